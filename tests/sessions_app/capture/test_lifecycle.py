"""The lifecycle service against the emulator, through the real SDK: status moves forward
only, streams are refreshed from VideoDB, and every AI operation is started exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connection

from sessions_app import gateway
from sessions_app.capture import handoff, lifecycle
from sessions_app.live import broadcast
from sessions_app.models import (
    AlertRule,
    CaptureSession,
    StreamOperation,
    WebhookDelivery,
    url_secret,
)
from tests.conftest import TINY_MEETING
from tests.sessions_app.watching import GroupWatch

S = CaptureSession.Status


@pytest.fixture
def created(videodb, owner) -> CaptureSession:
    return handoff.create_session(
        owner,
        title="Pricing review",
        audio_prompt="Extract key decisions and action items",
        visual_prompt="Describe what is on screen",
    )


def play(videodb, session: CaptureSession, speed: float = 1.0) -> None:
    """The desktop client's part: start capturing with a client token, as a real one would."""
    token = handoff.mint_client_token(session).token
    videodb.control.simulate(session.videodb_id, TINY_MEETING, speed=speed, client_token=token)
    videodb.control.wait_for_status(session.videodb_id, "active")


def operations(session: CaptureSession) -> set[tuple[str, str]]:
    return set(
        StreamOperation.objects.filter(stream__session=session).values_list("stream__name", "key")
    )


EXPECTED_OPERATIONS = {
    ("mic:default", "transcript"),
    ("mic:default", "audio_index"),
    ("system_audio:default", "transcript"),
    ("system_audio:default", "audio_index"),
    ("display:1", "visual_index"),
}


@pytest.mark.django_db
class TestCreatingASession:
    def test_the_session_exists_in_videodb_with_our_webhook_and_metadata(
        self, videodb, created, settings
    ) -> None:
        remote = videodb.control.session(created.videodb_id)
        assert created.videodb_id.startswith("cap-")
        assert remote["callback_url"] == (
            f"{settings.PUBLIC_BASE_URL}/webhooks/videodb/"
            f"{url_secret(created.webhook_secret, 'lifecycle')}/"
        )
        assert remote["metadata"]["copilot_session"] == str(created.uuid)
        assert created.status == S.CREATED

    def test_a_refusal_from_videodb_keeps_nothing(self, videodb, owner, settings) -> None:
        settings.VIDEODB_EMULATOR_API_KEY = "not-the-key"
        gateway.reset()
        with pytest.raises(gateway.PermanentGatewayError) as refused:
            handoff.create_session(owner, title="x", audio_prompt="", visual_prompt="")
        assert refused.value.status == 401
        assert not CaptureSession.objects.exists()

    def test_an_outage_is_retryable_and_keeps_nothing(self, videodb, owner) -> None:
        videodb.control.inject_faults(fail_count=10, status=503)
        with pytest.raises(gateway.RetryableGatewayError):
            handoff.create_session(owner, title="x", audio_prompt="", visual_prompt="")
        assert not CaptureSession.objects.exists()

    def test_client_tokens_are_fresh_per_request_and_not_the_api_key(
        self, videodb, created
    ) -> None:
        first = handoff.mint_client_token(created)
        second = handoff.mint_client_token(created)
        assert first.token != second.token
        assert videodb.api_key not in (first.token, second.token)
        assert first.capture_session_id == created.videodb_id


@pytest.mark.django_db
class TestApplyingTheLifecycle:
    def test_syncing_an_active_session_records_its_streams_with_media_types(
        self, videodb, created
    ) -> None:
        play(videodb, created)
        result = lifecycle.sync_session(created.pk)
        assert result.status == S.ACTIVE and result.start_ai
        created.refresh_from_db()
        assert created.started_at is not None
        media = {s.name: (s.kind, s.media_types) for s in created.streams.all()}
        assert media == {
            "mic:default": ("mic", ["audio"]),
            "system_audio:default": ("system_audio", ["audio"]),
            "display:1": ("screen", ["video"]),
        }

    def test_a_late_starting_after_active_changes_nothing(self, videodb, created) -> None:
        play(videodb, created)
        lifecycle.sync_session(created.pk)
        delivery = WebhookDelivery.objects.create(
            dedupe_key="late-starting", session=created, event="capture_session.starting",
            raw_body="{}", payload={"event": "capture_session.starting"},
        )  # fmt: skip
        result = lifecycle.process_delivery(delivery.pk)
        assert result.status == S.ACTIVE and not result.changed
        delivery.refresh_from_db()
        assert delivery.outcome == "processed"

    def test_stopped_arriving_before_active_is_taken(self, videodb, created) -> None:
        play(videodb, created)
        videodb.control.stop_session(created.videodb_id)
        videodb.control.wait_for_status(created.videodb_id, "stopped")
        delivery = WebhookDelivery.objects.create(
            dedupe_key="stopped-first", session=created, event="capture_session.stopped",
            raw_body="{}", payload={"event": "capture_session.stopped"},
        )  # fmt: skip
        result = lifecycle.process_delivery(delivery.pk)
        assert result.status == S.STOPPED
        assert result.request_export and not result.start_ai
        created.refresh_from_db()
        assert created.ended_at is not None and created.streams.count() == 3

    def test_a_failed_session_shows_videodb_s_error(self, videodb, created) -> None:
        play(videodb, created)
        videodb.control.fail_session(created.videodb_id, code="capture_lost", message="Mic gone")
        payload = {"event": "capture_session.failed",
                   "data": {"error": {"code": "capture_lost", "message": "Mic gone"}}}  # fmt: skip
        delivery = WebhookDelivery.objects.create(
            dedupe_key="failed", session=created, event=payload["event"], raw_body="{}",
            payload=payload,
        )  # fmt: skip
        assert lifecycle.process_delivery(delivery.pk).status == S.FAILED
        created.refresh_from_db()
        assert created.error["message"] == "Mic gone"

    def test_a_stopped_session_is_exported_and_keeps_its_video(self, videodb, created) -> None:
        play(videodb, created, speed=20)
        videodb.control.wait_for_meeting(created.videodb_id)
        videodb.control.wait_for_status(created.videodb_id, "stopped")
        lifecycle.sync_session(created.pk)
        outcome = lifecycle.request_export(created.pk)
        created.refresh_from_db()
        if outcome != "exported":  # the export finished later: its webhook carries the video
            videodb.control.wait_for_status(created.videodb_id, "exported")
            remote = videodb.control.session(created.videodb_id)
            lifecycle.apply_remote(
                created,
                gateway.get_capture_session(created.videodb_id),
                hint={"event": "capture_session.exported", "data": remote.get("export") or {}},
            )
            created.refresh_from_db()
        assert created.status == S.EXPORTED
        assert created.exported_video_id


def heard_stopped(videodb, session: CaptureSession) -> None:
    """The meeting played and stopped; Copilot knows it stopped and has no video yet
    (whether or not VideoDB's own export has finished meanwhile)."""
    play(videodb, session, speed=20)
    videodb.control.wait_for_status(session.videodb_id, "stopped")
    lifecycle.sync_session(session.pk)
    CaptureSession.objects.filter(pk=session.pk).update(
        status=S.STOPPED, exported_video_id="", player_url="", stream_url=""
    )


def export_asks(videodb, session: CaptureSession) -> int:
    """How often Copilot asked VideoDB to export the session."""
    path = f"POST collection/default/capture/session/{session.videodb_id}/export"
    return videodb.control.request_counts().get(path, 0)


def exported_webhooks(videodb, session: CaptureSession) -> list[dict]:
    """The `exported` webhooks VideoDB sent for the session (their bodies)."""
    return [
        d["body"]
        for d in videodb.control.deliveries(session.videodb_id, kind="webhook")
        if d["body"]["event"] == "capture_session.exported"
    ]


@pytest.mark.django_db
class TestExporting:
    """VideoDB exports a stopped session by itself; Copilot asks only as a fallback."""

    def test_the_exported_webhook_stores_the_video_without_copilot_asking(
        self, videodb, created
    ) -> None:
        play(videodb, created, speed=20)
        videodb.control.wait_for_status(created.videodb_id, "exported")
        (hook,) = exported_webhooks(videodb, created)
        for n, event in enumerate(["capture_session.stopped", hook["event"]]):
            body = next(
                d["body"]
                for d in videodb.control.deliveries(created.videodb_id, kind="webhook")
                if d["body"]["event"] == event
            )
            delivery = WebhookDelivery.objects.create(
                dedupe_key=f"hook-{n}", session=created, event=event, raw_body="{}",
                payload=body,
            )  # fmt: skip
            lifecycle.process_delivery(delivery.pk)
        created.refresh_from_db()
        assert created.status == S.EXPORTED
        assert created.exported_video_id == hook["data"]["exported_video_id"]
        assert created.player_url == hook["data"]["player_url"]
        assert lifecycle.request_export(created.pk) == "not needed"
        assert export_asks(videodb, created) == 0

    def test_asking_after_videodb_exported_by_itself_stores_the_same_video_once(
        self, videodb, created
    ) -> None:
        # Copilot heard `stopped`; VideoDB's `exported` is still on its way when the
        # fallback asks.
        heard_stopped(videodb, created)
        videodb.control.wait_for_status(created.videodb_id, "exported")
        assert lifecycle.request_export(created.pk) == "exported"
        (hook,) = exported_webhooks(videodb, created)
        created.refresh_from_db()
        assert created.exported_video_id == hook["data"]["exported_video_id"]

        delivery = WebhookDelivery.objects.create(
            dedupe_key="late-exported", session=created, event=hook["event"], raw_body="{}",
            payload=hook,
        )  # fmt: skip
        assert lifecycle.process_delivery(delivery.pk).changed is False
        assert lifecycle.request_export(created.pk) == "not needed"
        created.refresh_from_db()
        assert created.exported_video_id == hook["data"]["exported_video_id"]
        assert export_asks(videodb, created) == 1
        assert len(exported_webhooks(videodb, created)) == 1  # VideoDB did not export again

    def test_a_failed_ask_is_given_back_for_the_retry(self, created, videodb) -> None:
        heard_stopped(videodb, created)
        videodb.control.inject_faults(fail_count=1, status=500)
        with pytest.raises(gateway.RetryableGatewayError):
            lifecycle.request_export(created.pk)
        assert CaptureSession.objects.get(pk=created.pk).export_requested_at is None
        assert lifecycle.request_export(created.pk) == "exported"


@pytest.mark.django_db
class TestStartingTheAI:
    def test_each_stream_gets_its_operations_once(self, videodb, created) -> None:
        play(videodb, created)
        lifecycle.sync_session(created.pk)
        first = lifecycle.start_ai(created.pk)
        assert len(first) == 5
        assert lifecycle.start_ai(created.pk) == []
        assert operations(created) == EXPECTED_OPERATIONS
        assert set(StreamOperation.objects.values_list("state", flat=True)) == {"started"}
        # VideoDB's side: one index of each kind per stream.
        conn = videodb.connect()
        for stream in created.streams.all():
            indexes = conn.get_collection().get_rtstream(stream.videodb_id).list_scene_indexes()
            assert len(indexes) == 1

    def test_a_session_that_is_not_active_starts_nothing(self, videodb, created) -> None:
        assert lifecycle.start_ai(created.pk) == []
        assert not StreamOperation.objects.exists()

    def test_a_retryable_failure_releases_the_claim_for_the_retry(self, videodb, created) -> None:
        play(videodb, created)
        lifecycle.sync_session(created.pk)
        videodb.control.inject_faults(fail_count=1, status=503)
        with pytest.raises(gateway.RetryableGatewayError):
            lifecycle.start_ai(created.pk)
        assert not StreamOperation.objects.filter(state="claimed").exists()
        lifecycle.start_ai(created.pk)
        assert operations(created) == EXPECTED_OPERATIONS

    def test_alert_rules_become_one_event_and_one_alert_per_watched_index(
        self, videodb, created, owner
    ) -> None:
        rule = AlertRule.objects.create(
            owner=owner, label="pricing", prompt="Someone talks about price", target="both"
        )
        created.alert_rules.add(rule)
        play(videodb, created)
        lifecycle.sync_session(created.pk)
        lifecycle.start_ai(created.pk)
        lifecycle.start_ai(created.pk)
        rule.refresh_from_db()
        assert rule.videodb_event_id
        alerts = set(
            StreamOperation.objects.filter(kind="alert").values_list("stream__name", "key")
        )
        assert alerts == {
            ("mic:default", f"alert:{rule.pk}:audio"),
            ("system_audio:default", f"alert:{rule.pk}:audio"),
            ("display:1", f"alert:{rule.pk}:visual"),
        }
        assert len(videodb.connect().list_events()) == 1

    def test_a_rule_whose_event_videodb_no_longer_knows_gets_a_new_one(
        self, videodb, created, owner
    ) -> None:
        # As after a restart of the local emulator (or an event deleted in VideoDB).
        rule = AlertRule.objects.create(
            owner=owner, label="pricing", prompt="Someone talks about price", target="audio",
            videodb_event_id="evt-forgotten",
        )  # fmt: skip
        created.alert_rules.add(rule)
        play(videodb, created)
        lifecycle.sync_session(created.pk)
        lifecycle.start_ai(created.pk)
        rule.refresh_from_db()
        (event,) = videodb.connect().list_events()
        assert rule.videodb_event_id == event["event_id"] != "evt-forgotten"
        assert StreamOperation.objects.filter(kind="alert", state="started").count() == 2


@pytest.mark.django_db
class TestShowingTheState:
    """Every change to what the pages show about a session is pushed to them once it is
    committed: no page polls, and nothing waits for a task to finish."""

    @pytest.fixture
    def watch(self, created) -> Iterator[GroupWatch]:
        with GroupWatch(created.pk) as watch:
            yield watch

    def test_a_status_change_is_shown_on_every_open_page_once_committed(
        self, videodb, created, django_capture_on_commit_callbacks, watch
    ) -> None:
        play(videodb, created)
        with django_capture_on_commit_callbacks() as on_commit:
            lifecycle.sync_session(created.pk)
            assert watch.received() == []  # not before the commit
        for callback in on_commit:
            callback()
        pushed = watch.received()
        assert {message["seq"] for message in pushed} == {broadcast.UNSEQUENCED}
        html = "\n".join(message["html"] for message in pushed)
        assert 'id="live-status"' in html and 'data-session-status="active"' in html
        for stream in created.streams.all():  # the new streams' speaker and health rows
            assert f'id="health-{stream.pk}"' in html

    def test_what_changes_nothing_shows_nothing(
        self, videodb, created, django_capture_on_commit_callbacks, watch
    ) -> None:
        play(videodb, created)
        with django_capture_on_commit_callbacks(execute=True):
            lifecycle.sync_session(created.pk)
        assert watch.received()
        with django_capture_on_commit_callbacks(execute=True):
            lifecycle.sync_session(created.pk)
        assert watch.received() == []

    def test_an_export_is_shown(
        self, videodb, created, django_capture_on_commit_callbacks, watch
    ) -> None:
        play(videodb, created, speed=20)
        videodb.control.wait_for_status(created.videodb_id, "exported")  # VideoDB's own
        with django_capture_on_commit_callbacks(execute=True):
            lifecycle.sync_session(created.pk)
        assert 'data-session-status="exported"' in watch.html()

    def test_a_session_videodb_lost_is_shown_as_failed_without_its_error(
        self, created, django_capture_on_commit_callbacks, watch
    ) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            assert lifecycle.record_lost(created.pk, "no capture session cap-secret-detail")
        html = watch.html()
        # Share-link viewers are in the group too: VideoDB's error is for the owner's card.
        assert 'data-session-status="failed"' in html and "cap-secret-detail" not in html

    def test_the_ai_starting_or_failing_tells_the_owners_card_to_refresh(
        self, videodb, created, django_capture_on_commit_callbacks, watch
    ) -> None:
        play(videodb, created)
        with django_capture_on_commit_callbacks(execute=True):
            lifecycle.sync_session(created.pk)
        watch.received()
        with django_capture_on_commit_callbacks(execute=True):
            lifecycle.start_ai(created.pk)
        assert 'id="live-status"' in watch.html()
        with django_capture_on_commit_callbacks(execute=True):
            lifecycle.record_ai_failure(created.pk, "retrying: quota of key sk-owner-only")
        html = watch.html()
        assert 'id="live-status"' in html and "sk-owner-only" not in html

    def test_a_channel_layer_failure_leaves_the_change_in_place(
        self, created, django_capture_on_commit_callbacks, monkeypatch, caplog
    ) -> None:
        class RedisDown:
            async def group_send(self, group: str, message: dict) -> None:
                raise ConnectionError("Error 111 connecting to redis:6379")

        monkeypatch.setattr(broadcast, "get_channel_layer", RedisDown)
        with django_capture_on_commit_callbacks(execute=True):
            assert lifecycle.record_lost(created.pk, "gone")
        created.refresh_from_db()
        assert created.status == S.FAILED
        assert "could not publish" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_start_each_operation_once(videodb, owner) -> None:
    session = handoff.create_session(
        owner, title="Race", audio_prompt="Decisions", visual_prompt="Screen"
    )
    play(videodb, session)
    lifecycle.sync_session(session.pk)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(lifecycle.start_ai(session.pk))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    started = [key for result in results for key in result]
    assert len(started) == len(set(started)) == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_fallbacks_ask_videodb_for_the_export_once(videodb, owner) -> None:
    session = handoff.create_session(owner, title="Race", audio_prompt="", visual_prompt="")
    heard_stopped(videodb, session)
    # VideoDB is slow to answer: the other asks come while the first is in flight.
    videodb.control.inject_faults(slow_count=1, delay=0.5)
    outcomes: list[str] = []

    def ask() -> None:
        try:
            outcomes.append(lifecycle.request_export(session.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(outcomes) == 3 and outcomes.count("exported") == 1
    assert set(outcomes) <= {"exported", "already requested", "not needed"}
    assert export_asks(videodb, session) == 1
