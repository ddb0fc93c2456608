"""Tasks and the reconciler, run by a real worker thread against the emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.utils import timezone

from sessions_app import capture, lifecycle
from sessions_app.admin import CaptureSessionAdmin, WebhookDeliveryAdmin
from sessions_app.models import CaptureSession, StreamOperation, WebhookDelivery
from sessions_app.tasks import reconcile
from tests.conftest import TINY_MEETING, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


@pytest.fixture
def active(videodb, owner) -> CaptureSession:
    session = capture.create_session(
        owner, title="Standup", audio_prompt="Decisions", visual_prompt="Screen"
    )
    token = capture.mint_client_token(session).token
    videodb.control.simulate(session.videodb_id, TINY_MEETING, speed=1, client_token=token)
    videodb.control.wait_for_status(session.videodb_id, "active")
    return session


def stored_delivery(session: CaptureSession, *, age: timedelta) -> WebhookDelivery:
    """A delivery the receiver accepted but whose task never ran (the broker was down)."""
    return WebhookDelivery.objects.create(
        dedupe_key=f"never-published-{session.pk}",
        session=session,
        event="capture_session.active",
        raw_body="{}",
        payload={"event": "capture_session.active"},
        received_at=timezone.now() - age,
    )


def test_the_reconciler_processes_a_delivery_that_was_never_enqueued(
    active, in_process_worker, settings
) -> None:
    settings.RECONCILE_REQUEUE_AFTER_SECONDS = 30
    delivery = stored_delivery(active, age=timedelta(minutes=1))
    fresh = WebhookDelivery.objects.create(
        dedupe_key="just-arrived", session=active, event="capture_session.active",
        raw_body="{}", payload={},
    )  # fmt: skip
    counts = reconcile()
    assert counts["deliveries"] == 1  # the fresh one is probably still in the broker
    wait_until(lambda: WebhookDelivery.objects.get(pk=delivery.pk).outcome == "processed")
    wait_until(lambda: StreamOperation.objects.filter(state="started").count() == 5)
    assert WebhookDelivery.objects.get(pk=fresh.pk).outcome == "pending"


def test_the_reconciler_repairs_a_session_that_lags_videodb(
    active, in_process_worker, settings
) -> None:
    settings.RECONCILE_SESSION_LAG_SECONDS = 0
    CaptureSession.objects.filter(pk=active.pk).update(
        updated_at=timezone.now() - timedelta(minutes=5)
    )
    assert reconcile()["sessions"] == 1
    wait_until(lambda: CaptureSession.objects.get(pk=active.pk).status == "active")
    wait_until(lambda: StreamOperation.objects.filter(state="started").count() == 5)


def test_a_permanent_refusal_marks_the_delivery_failed_with_the_reason(
    videodb, owner, in_process_worker, settings
) -> None:
    session = capture.create_session(owner, title="Gone", audio_prompt="", visual_prompt="")
    CaptureSession.objects.filter(pk=session.pk).update(videodb_id="cap-does-not-exist")
    delivery = stored_delivery(CaptureSession.objects.get(pk=session.pk), age=timedelta(0))
    settings.RECONCILE_REQUEUE_AFTER_SECONDS = 0
    reconcile()
    failed = wait_until(
        lambda: (d := WebhookDelivery.objects.get(pk=delivery.pk)).outcome == "failed" and d
    )
    assert "could not read the capture session" in failed.error


def test_reprocessing_a_delivery_from_the_admin_runs_it_again(
    active, in_process_worker, staff
) -> None:
    delivery = stored_delivery(active, age=timedelta(0))
    lifecycle.process_delivery(delivery.pk)
    StreamOperation.objects.all().delete()
    request = RequestFactory().post("/admin/")
    request.user = staff
    request._messages = _Messages()
    WebhookDeliveryAdmin(WebhookDelivery, site).reprocess(
        request, WebhookDelivery.objects.filter(pk=delivery.pk)
    )
    assert "Queued 1 delivery(ies)" in request._messages.texts[0]
    wait_until(lambda: StreamOperation.objects.filter(state="started").count() == 5)


def test_stopping_a_capture_from_the_admin_stops_it_in_videodb(active, videodb, staff) -> None:
    request = RequestFactory().post("/admin/")
    request.user = staff
    request._messages = _Messages()
    CaptureSessionAdmin(CaptureSession, site).stop_capture(
        request, CaptureSession.objects.filter(pk=active.pk)
    )
    assert "Asked VideoDB to stop 1 capture(s)" in request._messages.texts[0]
    videodb.control.wait_for_status(active.videodb_id, "stopped")


class _Messages:
    """The admin's message store, kept in memory for the assertion."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, level: int, message: str, extra_tags: str = "") -> None:
        self.texts.append(str(message))


def test_a_session_videodb_no_longer_has_is_marked_failed_and_no_longer_watched(
    videodb, owner, in_process_worker, settings
) -> None:
    session = capture.create_session(owner, title="Forgotten", audio_prompt="", visual_prompt="")
    CaptureSession.objects.filter(pk=session.pk).update(
        videodb_id="cap-forgotten", updated_at=timezone.now() - timedelta(minutes=5)
    )
    settings.RECONCILE_SESSION_LAG_SECONDS = 0
    assert reconcile()["sessions"] == 1
    failed = wait_until(
        lambda: (s := CaptureSession.objects.get(pk=session.pk)).status == "failed" and s
    )
    assert failed.error["code"] == "not_found_in_videodb"
    assert reconcile()["sessions"] == 0
