"""Tasks and the reconciler, run by a real worker thread against the emulator; VideoDB
outages are the emulator's injected 5xx answers, retried for real (through the broker by the
worker, or in-process by ``apply``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery.worker import state as worker_state
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.utils import timezone

from sessions_app import gateway
from sessions_app.admin import CaptureSessionAdmin, WebhookDeliveryAdmin
from sessions_app.capture import handoff, lifecycle
from sessions_app.gateway import RetryableGatewayError
from sessions_app.models import CaptureSession, RTStream, StreamOperation, WebhookDelivery
from sessions_app.tasks import (
    process_delivery,
    reconcile,
    request_export,
    start_session_ai,
    sync_session,
)
from tests.conftest import TINY_MEETING, point_at, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


@pytest.fixture
def active(videodb, owner) -> CaptureSession:
    session = handoff.create_session(
        owner, title="Standup", audio_prompt="Decisions", visual_prompt="Screen"
    )
    token = handoff.mint_client_token(session).token
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
    session = handoff.create_session(owner, title="Gone", audio_prompt="", visual_prompt="")
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
    session = handoff.create_session(owner, title="Forgotten", audio_prompt="", visual_prompt="")
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


# --- the retry policy, on real VideoDB outages ---------------------------------------------

# The gateway reads one capture session per try; 500 is not retried inside the SDK (502-504
# are, once), so each injected fault fails exactly one try.
OUTAGE = 500
TRIES = process_delivery.max_retries + 1


def run_here(task, *args: object) -> object:
    """Run ``task`` in this thread, its retries too (at once), and return what it returned."""
    result = task.apply(args=args)
    if result.failed():
        raise result.result
    return result.result


@pytest.fixture
def created(videodb, owner) -> CaptureSession:
    return handoff.create_session(owner, title="Retro", audio_prompt="", visual_prompt="")


@pytest.fixture
def no_wait(settings) -> None:
    settings.TASK_RETRY_BASE_SECONDS = 0  # every retry at once: the policy, not the clock


def test_a_videodb_outage_is_retried_until_the_delivery_is_processed(
    created, videodb, in_process_worker, no_wait
) -> None:
    delivery = stored_delivery(created, age=timedelta(0))
    videodb.control.inject_faults(fail_count=3, status=OUTAGE)
    process_delivery.delay(delivery.pk)
    done = wait_until(
        lambda: (d := WebhookDelivery.objects.get(pk=delivery.pk)).outcome == "processed" and d
    )
    assert done.attempts == 4 and done.error == ""


def test_after_the_last_try_the_delivery_is_marked_failed_with_videodb_s_answer(
    created, videodb, in_process_worker, no_wait
) -> None:
    delivery = stored_delivery(created, age=timedelta(0))
    videodb.control.inject_faults(fail_count=TRIES + 1, status=OUTAGE)
    process_delivery.delay(delivery.pk)
    failed = wait_until(
        lambda: (d := WebhookDelivery.objects.get(pk=delivery.pk)).outcome == "failed" and d
    )
    assert failed.attempts == TRIES
    assert "injected fault: HTTP 500" in failed.error


@pytest.fixture
def heard_active(active, videodb) -> CaptureSession:
    """The active session as Copilot knows it (status and streams), its meeting slowed so it
    does not end during the test."""
    videodb.control.set_speed(active.videodb_id, 0.01)
    lifecycle.sync_session(active.pk)
    return CaptureSession.objects.get(pk=active.pk)


def ai_error(session: CaptureSession) -> str:
    return CaptureSession.objects.get(pk=session.pk).ai_error


def test_starting_the_ai_says_it_is_retrying_then_starts_once_videodb_is_back(
    heard_active, videodb, in_process_worker, no_wait
) -> None:
    # The first call fails after a second; the retry's first call also takes a second, long
    # enough to see the page's message while it waits.
    videodb.control.inject_faults(fail_count=1, status=OUTAGE, slow_count=2, delay=1.0)
    start_session_ai.delay(heard_active.pk)
    wait_until(lambda: ai_error(heard_active).startswith("retrying: VideoDB could not"))
    wait_until(lambda: StreamOperation.objects.filter(state="started").count() == 5)
    # Cleared by the same task once every operation is marked started: a moment later.
    wait_until(lambda: ai_error(heard_active) == "")


def test_starting_the_ai_gives_up_after_the_last_try_and_says_so(
    heard_active, videodb, no_wait
) -> None:
    videodb.control.inject_faults(fail_count=TRIES + 1, status=OUTAGE)
    with pytest.raises(RetryableGatewayError):  # the task ends failed, as the worker logs
        run_here(start_session_ai, heard_active.pk)
    assert ai_error(heard_active).startswith("gave up after retries: VideoDB could")
    assert not StreamOperation.objects.exists()  # every claim released for the reconciler
    assert videodb.control.state()["faults"]["fail_count"] == 1  # no try after the last


def test_a_refusal_to_start_the_ai_is_shown_at_once_without_retrying(
    heard_active, videodb, no_wait
) -> None:
    for n, stream in enumerate(RTStream.objects.filter(session=heard_active)):
        RTStream.objects.filter(pk=stream.pk).update(videodb_id=f"rts-unknown-{n}")
    assert run_here(start_session_ai, heard_active.pk) == []
    assert "not found" in ai_error(heard_active)
    assert not ai_error(heard_active).startswith(("retrying", "gave up"))
    counts = videodb.control.request_counts()
    assert sum(n for call, n in counts.items() if "rts-unknown" in call) == 1


def test_re_reading_a_session_through_an_outage_fails_after_the_last_try(
    created, videodb, no_wait
) -> None:
    videodb.control.inject_faults(fail_count=TRIES, status=OUTAGE)
    assert run_here(sync_session, created.pk) == "failed"
    assert videodb.control.state()["faults"]["fail_count"] == 0
    videodb.control.inject_faults(fail_count=TRIES - 1, status=OUTAGE)
    assert run_here(sync_session, created.pk) == "created"  # the last try got through


def test_a_session_videodb_forgot_is_lost_at_once(make_session, owner, videodb, no_wait) -> None:
    session = make_session(owner, videodb_id="cap-forgotten", status="active")
    assert run_here(sync_session, session.pk) == "lost"
    counts = videodb.control.request_counts()
    assert counts["GET collection/default/capture/session/cap-forgotten"] == 1


def test_an_export_is_failed_after_the_last_try_and_refused_at_once(
    heard_active, videodb, no_wait
) -> None:
    # Copilot thinks the session stopped while VideoDB still captures: VideoDB refuses (409).
    CaptureSession.objects.filter(pk=heard_active.pk).update(status="stopped")
    assert run_here(request_export, heard_active.pk) == "refused"
    videodb.control.inject_faults(fail_count=TRIES, status=OUTAGE)
    assert run_here(request_export, heard_active.pk) == "failed"
    assert videodb.control.state()["faults"]["fail_count"] == 0


# --- exports: VideoDB's own, and Copilot's fallback ask --------------------------------------


@pytest.fixture
def silent_videodb(settings) -> Iterator[object]:
    """An emulator that, unlike VideoDB, never exports by itself: only the fallback can."""
    from videodb_emulator.testing import running_emulator

    with running_emulator(export_delay=None) as emulator:
        point_at(settings, emulator)
        yield emulator
        gateway.reset()


def stopped_in_videodb(emulator, owner) -> CaptureSession:
    session = handoff.create_session(owner, title="Retro", audio_prompt="", visual_prompt="")
    token = handoff.mint_client_token(session).token
    emulator.control.simulate(session.videodb_id, TINY_MEETING, speed=20, client_token=token)
    emulator.control.wait_for_status(session.videodb_id, "stopped")
    return session


def stopped_heard_twice(session: CaptureSession) -> None:
    """VideoDB's `stopped` webhook, delivered twice, processed by the worker."""
    for n in range(2):
        delivery = WebhookDelivery.objects.create(
            dedupe_key=f"stopped-{n}", session=session, event="capture_session.stopped",
            raw_body="{}", payload={"event": "capture_session.stopped"},
        )  # fmt: skip
        process_delivery.delay(delivery.pk)
    wait_until(
        lambda: not WebhookDelivery.objects.filter(session=session, processed_at=None).exists()
    )


def export_asks(emulator, session: CaptureSession) -> int:
    path = f"POST collection/default/capture/session/{session.videodb_id}/export"
    return emulator.control.request_counts().get(path, 0)


def worker_idle() -> bool:
    """The in-process worker holds no task, not even one waiting for its countdown."""
    return not worker_state.scheduled_requests and not worker_state.reserved_requests


def test_when_no_exported_comes_the_fallback_asks_once_after_the_delay(
    silent_videodb, owner, in_process_worker, settings
) -> None:
    settings.EXPORT_FALLBACK_SECONDS = 2
    session = stopped_in_videodb(silent_videodb, owner)
    stopped_heard_twice(session)
    assert CaptureSession.objects.get(pk=session.pk).status == "stopped"
    assert export_asks(silent_videodb, session) == 0  # VideoDB is given time to export

    exported = wait_until(
        lambda: (s := CaptureSession.objects.get(pk=session.pk)).status == "exported" and s,
        10,
        "the fallback to export the session",
    )
    assert (
        exported.exported_video_id
        == silent_videodb.control.session(session.videodb_id)["exported_video_id"]
    )
    wait_until(worker_idle, 10, "the second `stopped`'s fallback to run")
    assert reconcile()["exports"] == 0
    assert export_asks(silent_videodb, session) == 1


def test_videodb_s_own_export_leaves_the_fallback_nothing_to_ask(
    videodb, owner, in_process_worker, settings
) -> None:
    settings.EXPORT_FALLBACK_SECONDS = 5  # VideoDB (the emulator) exports 2 s after the stop
    session = stopped_in_videodb(videodb, owner)
    stopped_heard_twice(session)
    videodb.control.wait_for_status(session.videodb_id, "exported")  # by itself
    sent = videodb.control.deliveries(session.videodb_id, kind="webhook")
    (hook,) = [d["body"] for d in sent if d["body"]["event"] == "capture_session.exported"]
    delivery = WebhookDelivery.objects.create(
        dedupe_key="exported", session=session, event=hook["event"], raw_body="{}",
        payload=hook,
    )  # fmt: skip
    process_delivery.delay(delivery.pk)
    exported = wait_until(
        lambda: (s := CaptureSession.objects.get(pk=session.pk)).status == "exported" and s
    )
    assert exported.exported_video_id == hook["data"]["exported_video_id"]
    assert exported.player_url == hook["data"]["player_url"]
    # The fallbacks the two `stopped` scheduled run, and find nothing to do.
    wait_until(worker_idle, 10, "the fallbacks to run")
    assert reconcile()["exports"] == 0
    assert export_asks(videodb, session) == 0


def test_the_reconciler_asks_only_once_the_fallback_delay_has_passed(
    silent_videodb, owner, in_process_worker, settings
) -> None:
    settings.EXPORT_FALLBACK_SECONDS = 60
    session = stopped_in_videodb(silent_videodb, owner)
    lifecycle.sync_session(session.pk)  # stopped, as far as Copilot knows, and no video
    assert reconcile()["exports"] == 0  # VideoDB may still be exporting by itself

    # The fallback that the stop scheduled was lost (the broker went away).
    stopped_at = timezone.now() - timedelta(seconds=61)
    CaptureSession.objects.filter(pk=session.pk).update(
        started_at=stopped_at - timedelta(minutes=5), ended_at=stopped_at
    )
    assert reconcile()["exports"] == 1
    wait_until(lambda: CaptureSession.objects.get(pk=session.pk).status == "exported")
    wait_until(worker_idle, 10, "the worker to finish")
    assert reconcile()["exports"] == 0
    assert export_asks(silent_videodb, session) == 1
