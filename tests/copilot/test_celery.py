"""Celery is wired: a task published here is run by a real worker, and the retry policy's
delays grow, spread and stop growing where they should.

The embedded default runs the worker as a thread of this process (copilot.runtime); with
Redis a separate ``celery -A copilot worker`` process consumes from the broker. There is no
result backend: a worker is seen to run a task by what the task stores.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from copilot.celery import RETRY_DELAY_MAX_SECONDS, app, retry_delay
from sessions_app.intelligence.schedule import REFRESH_TASK
from sessions_app.models import CaptureSession
from sessions_app.tasks import process_delivery, rebuild_search, refresh_brief, sync_session
from tests.conftest import start_worker, wait_until


def forgotten_session(make_session, owner) -> CaptureSession:
    """A session VideoDB (the emulator) has never heard of: re-reading it marks it failed."""
    return make_session(owner, videodb_id="cap-forgotten", status=CaptureSession.Status.ACTIVE)


def status_of(session: CaptureSession) -> str:
    return CaptureSession.objects.get(pk=session.pk).status


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
def test_the_in_process_worker_runs_a_published_task(
    videodb, make_session, owner, in_process_worker
) -> None:
    session = forgotten_session(make_session, owner)
    sync_session.delay(session.pk)
    wait_until(lambda: status_of(session) == "failed", what="the worker to run sync_session")


def test_tasks_are_acknowledged_late_and_no_result_is_kept() -> None:
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.result_backend is None and app.conf.task_ignore_result
    assert sync_session.max_retries == 8


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_a_separate_worker_process_answers_ping_and_runs_tasks_through_redis(
    videodb, make_session, owner, tmp_path, settings
) -> None:
    assert settings.CELERY_BROKER_URL.startswith("redis")
    worker = start_worker(tmp_path, VIDEODB_BASE_URL=videodb.base_url, VIDEODB_API_KEY=None)
    try:
        # What docker compose's health check asks (`celery inspect ping`): no backend needed.
        name = f"worker@{socket.gethostname()}"
        replies = wait_until(
            lambda: app.control.ping(destination=[name], timeout=1.0), timeout=60, what="a pong"
        )
        assert replies == [{name: {"ok": "pong"}}]
        session = forgotten_session(make_session, owner)
        sync_session.delay(session.pk)
        wait_until(lambda: status_of(session) == "failed", what="the worker to run sync_session")
    finally:
        worker.stop()


# --- the delay before a retry -------------------------------------------------------------


def delays(retries: int, count: int = 400) -> list[float]:
    return [retry_delay(retries) for _ in range(count)]


def test_each_retry_may_wait_twice_as_long_as_the_one_before(settings) -> None:
    settings.TASK_RETRY_BASE_SECONDS = 2
    for retries, ceiling in [(0, 2), (1, 4), (2, 8), (3, 16), (5, 64), (7, 256)]:
        sample = delays(retries)
        assert all(0 <= d <= ceiling for d in sample), retries
        # 400 draws all below 90 % of the ceiling would happen once in 10^18 runs.
        assert max(sample) > 0.9 * ceiling, retries


def test_no_retry_waits_longer_than_five_minutes(settings) -> None:
    settings.TASK_RETRY_BASE_SECONDS = 2
    assert RETRY_DELAY_MAX_SECONDS == 300
    for retries in (8, 9, 20, 1000):
        sample = delays(retries)
        assert all(0 <= d <= 300 for d in sample), retries
        assert max(sample) > 270, retries


def test_the_jitter_is_full_anywhere_from_zero_to_the_ceiling(settings) -> None:
    settings.TASK_RETRY_BASE_SECONDS = 2
    sample = delays(5)  # ceiling 64 s
    assert min(sample) < 6.4 and max(sample) > 57.6
    assert 140 < sum(d < 32 for d in sample) < 260  # about half below the middle
    assert len(set(sample)) > 390  # spread, not a few fixed steps


def test_the_first_delay_comes_from_task_retry_base_seconds(settings) -> None:
    settings.TASK_RETRY_BASE_SECONDS = 5
    assert 4.5 < max(delays(0)) <= 5
    assert 9 < max(delays(1)) <= 10
    settings.TASK_RETRY_BASE_SECONDS = 0
    assert set(delays(3)) == {0}


# --- one queue per kind of task -------------------------------------------------------------


def waiting(queue: str) -> int:
    """Messages waiting on ``queue`` in the configured broker (memory or Redis)."""
    with app.connection_for_write() as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


@pytest.fixture
def empty_queues(settings) -> Iterator[None]:
    def purge() -> None:
        with app.connection_for_write() as connection:
            for queue in settings.TASK_QUEUES:
                connection.default_channel.queue_purge(queue)

    purge()
    yield
    purge()


@pytest.mark.django_db
def test_each_kind_of_task_is_published_to_its_own_queue(empty_queues) -> None:
    # No worker runs: the messages stay where the broker put them.
    process_delivery.delay(1)
    sync_session.delay(1)
    refresh_brief.delay(1)
    app.send_task(REFRESH_TASK, args=(1,))  # how the live path asks for a brief
    rebuild_search.delay(1)
    assert {queue: waiting(queue) for queue in ("lifecycle", "intelligence", "indexing")} == {
        "lifecycle": 2,
        "intelligence": 2,
        "indexing": 1,
    }


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_a_lifecycle_worker_processes_a_webhook_while_intelligence_tasks_wait(
    videodb, owner, tmp_path, empty_queues
) -> None:
    from django.test import Client

    from sessions_app.capture import handoff
    from sessions_app.models import WebhookDelivery, url_secret

    session = handoff.create_session(owner, title="Queues", audio_prompt="", visual_prompt="")
    # Briefs waiting for a worker that is busy elsewhere (or slow, or down): none of them may
    # stand between a webhook and the worker that handles it.
    for _ in range(20):
        refresh_brief.delay(session.pk, final=True)
    worker = start_worker(
        tmp_path, queues=["lifecycle"], VIDEODB_BASE_URL=videodb.base_url, VIDEODB_API_KEY=None
    )
    try:
        body = {
            "version": "2",
            "event": "capture_session.created",
            "event_id": "evt-queues",
            "timestamp": "2026-01-20T12:34:56Z",
            "capture_session_id": session.videodb_id,
            "status": "created",
            "data": {},
        }
        secret = url_secret(session.webhook_secret, "lifecycle")
        response = Client().post(
            f"/webhooks/videodb/{secret}/", data=body, content_type="application/json"
        )
        assert response.json() == {"status": "accepted"}
        wait_until(
            lambda: WebhookDelivery.objects.get().outcome == "processed",
            timeout=60,
            what="the lifecycle worker to process the delivery",
        )
        assert waiting("intelligence") == 20
    finally:
        worker.stop()
