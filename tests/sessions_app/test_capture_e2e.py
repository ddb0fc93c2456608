"""End to end: a real Daphne takes the emulator's webhooks, a real Celery worker starts the
AI, and every stream's operations are started exactly once, however the webhooks arrive
and whatever happens to the worker and the broker.

On the embedded pass the worker is the one inside the Daphne process; on the PostgreSQL +
Redis pass it is a separate ``celery worker`` process.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions_app import gateway
from sessions_app.capture import handoff
from sessions_app.models import (
    Alert,
    AlertRule,
    CaptureSession,
    RelayConnection,
    StreamOperation,
    WebhookDelivery,
)
from tests.conftest import (
    ROOT,
    TINY_MEETING,
    free_port,
    point_at,
    process_env,
    start_server,
    start_worker,
    wait_for_port,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

EXPECTED = {
    ("mic:default", "transcript"),
    ("mic:default", "audio_index"),
    ("system_audio:default", "transcript"),
    ("system_audio:default", "audio_index"),
    ("display:1", "visual_index"),
}


def started_operations(session: CaptureSession) -> set[tuple[str, str]]:
    return set(
        StreamOperation.objects.filter(stream__session=session, state="started").values_list(
            "stream__name", "key"
        )
    )


def assert_started_once_in_videodb(emulator, session: CaptureSession) -> None:
    """VideoDB's side of "exactly once": one index of each kind per stream, one alert per
    watched index and event, one transcript start per audio stream."""
    conn = emulator.connect()
    for stream in session.streams.all():
        remote = conn.get_collection().get_rtstream(stream.videodb_id)
        names = collections.Counter(index.name for index in remote.list_scene_indexes())
        assert all(count == 1 for count in names.values()), (stream.name, names)
        for index in remote.list_scene_indexes():
            events = collections.Counter(a.get("event_id") for a in index.list_alerts())
            assert all(count == 1 for count in events.values()), (stream.name, events)
    starts = emulator.control.request_counts()
    for stream in (s for s in session.streams.all() if s.has_audio):
        assert starts.get(f"POST rtstream/{stream.videodb_id}/transcription", 0) == 1


@pytest.fixture
def emulator() -> Iterator[object]:
    from videodb_emulator.testing import running_emulator

    # Every webhook twice, released in shuffled batches: the at-least-once worst case.
    with running_emulator(
        duplicate_rate=1.0, shuffle_window=3, seed=7, webhook_backoff_base=0.2
    ) as emulator:
        yield emulator


@pytest.fixture
def stack(emulator, settings, tmp_path: Path) -> Iterator[dict]:
    """Daphne (and, with Redis, a worker) wired to the emulator; the test process creates
    sessions through the same services, against the same database and emulator."""
    env = {
        "VIDEODB_BASE_URL": emulator.base_url,
        "VIDEODB_API_KEY": None,
        "TASK_RETRY_BASE_SECONDS": "0",
        "RECONCILE_INTERVAL_SECONDS": "2",
        "RECONCILE_REQUEUE_AFTER_SECONDS": "3",
        "RECONCILE_SESSION_LAG_SECONDS": "5",
        "OPERATION_CLAIM_STALE_SECONDS": "3",
    }
    url, server = start_server(tmp_path, **env)
    # The worker builds alert callback URLs from PUBLIC_BASE_URL: it must name this server.
    worker = None if settings.EMBEDDED else start_worker(tmp_path, PUBLIC_BASE_URL=url, **env)
    if settings.EMBEDDED:
        # Daphne's in-process relay publishes its socket first, so operations are started
        # with it (and are never re-routed, which would count as another transcript call).
        wait_until(
            lambda: RelayConnection.objects.exclude(connection_id="").exists(),
            20,
            "the in-process relay to connect",
        )
    point_at(settings, emulator, url)
    try:
        yield {"url": url, "server": server, "worker": worker, "env": env}
    finally:
        gateway.reset()
        if worker is not None:
            worker.stop()
        server.stop()


def new_session(owner, *, rule: AlertRule | None = None) -> CaptureSession:
    return handoff.create_session(
        owner,
        title="Pricing review",
        audio_prompt="Extract key decisions and action items",
        visual_prompt="Describe what is on screen",
        alert_rules=[rule] if rule else [],
    )


def play(emulator, session: CaptureSession, speed: float = 1.0) -> None:
    token = handoff.mint_client_token(session).token
    emulator.control.simulate(session.videodb_id, TINY_MEETING, speed=speed, client_token=token)


def test_duplicated_and_shuffled_webhooks_start_each_operation_exactly_once(
    stack, emulator, owner
) -> None:
    rule = AlertRule.objects.create(
        owner=owner, label="pricing", prompt="Someone discusses price", target="both"
    )
    session = new_session(owner, rule=rule)
    # Nearly paused until the AI (the alert among it) has started, so the scripted objection
    # (3.8 s in) plays after the alert exists however busy the machine; then faster.
    play(emulator, session, speed=0.02)
    wait_until(
        lambda: len(started_operations(session)) == len(EXPECTED) + 3,
        60,
        "transcripts, indexes and alerts to start",
    )
    emulator.control.set_speed(session.videodb_id, 2.0)

    wait_until(
        lambda: CaptureSession.objects.get(pk=session.pk).status == "exported",
        60,
        "the session to be exported",
    )
    assert started_operations(session) >= EXPECTED
    assert_started_once_in_videodb(emulator, session)

    # Every event came at least twice, and each was stored once and processed. (The
    # `created` webhook may race our storing of the session id: it is refused, retried.)
    def all_delivered() -> list[dict]:
        sent = emulator.control.deliveries(session.videodb_id, kind="webhook")
        return sent if sent and all(d["state"] == "delivered" for d in sent) else []

    sent = wait_until(all_delivered, 30, "VideoDB to finish delivering")
    per_event = collections.Counter(d["event_id"] for d in sent)
    assert per_event and all(count >= 2 for count in per_event.values())
    stored = WebhookDelivery.objects.filter(session=session)
    assert sorted(stored.values_list("dedupe_key", flat=True)) == sorted(
        f"event:{event_id}" for event_id in per_event
    )
    wait_until(
        lambda: set(stored.values_list("outcome", flat=True)) == {"processed"},
        30,
        "every stored delivery to be processed",
    )
    assert all(d["attempts"][-1]["status"] == 200 for d in sent)

    session.refresh_from_db()
    assert session.exported_video_id and session.player_url
    assert session.ai_error == ""

    # The scripted pricing objection fired the rule's alert on the others' audio; VideoDB
    # called it back twice (duplicates on), and it was stored once.
    callbacks = emulator.control.deliveries(kind="alert")  # callbacks name no session
    assert len(callbacks) >= 2
    # With no relay (the services pass) only the callback brought it: it is shown once
    # VideoDB's index records bear it out (sessions.confirm_alert).
    wait_until(lambda: Alert.objects.filter(session=session).exists(), 60, "the confirmed alert")
    (alert,) = Alert.objects.filter(session=session)
    assert (alert.stream.name, alert.rule, alert.label) == ("system_audio:default", rule, "pricing")


@pytest.mark.services
def test_a_worker_killed_mid_task_still_starts_each_operation_once(
    stack, emulator, owner, tmp_path
) -> None:
    session = new_session(owner)
    # Slow VideoDB down so the worker is inside a call when it dies.
    emulator.control.inject_faults(slow_count=1000, delay=1.5)
    # A quarter speed (about 26 s): the AI starts only while the capture is live, and a busy
    # machine may take a while to get there after the crash.
    play(emulator, session, speed=0.25)
    wait_until(
        lambda: (
            StreamOperation.objects.filter(stream__session=session).exists()
            or WebhookDelivery.objects.filter(session=session, attempts__gt=0).exists()
        ),
        30,
        "the worker to be busy with the session",
    )
    stack["worker"].kill()
    emulator.control.clear_faults()

    replacement = start_worker(
        tmp_path, name="replacement", PUBLIC_BASE_URL=stack["url"], **stack["env"]
    )
    try:
        # The broker would hand the killed task back only after its visibility timeout;
        # the reconciler does not wait that long.
        reconcile = [sys.executable, "manage.py", "reconcile"]
        env = process_env(**stack["env"])

        def all_started() -> bool:
            subprocess.run(reconcile, cwd=ROOT, env=env, check=True, capture_output=True)
            return started_operations(session) == EXPECTED

        wait_until(all_started, 90, "every operation to be started after the crash")
        assert_started_once_in_videodb(emulator, session)
    finally:
        replacement.stop()


def start_redis(port: int, tmp_path: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, process)
    return process


@pytest.mark.services
def test_webhooks_arriving_while_redis_is_down_are_accepted_and_processed_later(
    emulator, settings, owner, tmp_path
) -> None:
    redis_port = free_port()
    redis = start_redis(redis_port, tmp_path)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        "REDIS_URL": redis_url,
        "VIDEODB_BASE_URL": emulator.base_url,
        "VIDEODB_API_KEY": None,
        "TASK_RETRY_BASE_SECONDS": "0",
        "RECONCILE_REQUEUE_AFTER_SECONDS": "0",
    }
    url, server = start_server(tmp_path, **env)
    worker = start_worker(tmp_path, PUBLIC_BASE_URL=url, **env)
    point_at(settings, emulator, url)
    try:
        session = new_session(owner)
        redis.kill()
        redis.wait(timeout=10)
        # A quarter speed (about 26 s): the AI starts only while the capture is live, so the
        # meeting must outlast the outage and the catching up, on a busy machine too.
        play(emulator, session, speed=0.25)
        # Accepted: stored and answered 200 although nothing could be enqueued.
        wait_until(
            lambda: WebhookDelivery.objects.filter(
                session=session, event="capture_session.active"
            ).exists(),
            30,
            "the active webhook to be stored",
        )
        time.sleep(1)
        assert not started_operations(session)
        active = [
            d
            for d in emulator.control.deliveries(session.videodb_id, kind="webhook")
            if d["event"] == "capture_session.active"
        ]
        assert active and all(d["attempts"][-1]["status"] == 200 for d in active)

        redis = start_redis(redis_port, tmp_path)
        env_with_broker = process_env(**env)

        def recovered() -> bool:
            subprocess.run(
                [sys.executable, "manage.py", "reconcile"],
                cwd=ROOT, env=env_with_broker, check=True, capture_output=True,
            )  # fmt: skip
            return started_operations(session) == EXPECTED

        wait_until(recovered, 90, "the stored webhooks to be processed once Redis is back")
        assert set(
            WebhookDelivery.objects.filter(
                session=session, event="capture_session.active"
            ).values_list("outcome", flat=True)
        ) == {"processed"}
        assert_started_once_in_videodb(emulator, session)
    finally:
        gateway.reset()
        worker.stop()
        server.stop()
        redis.kill()
        redis.wait(timeout=10)
