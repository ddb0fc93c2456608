"""The webhook receiver: right status for every kind of input, no effect from bad input,
and exactly one stored delivery (and one enqueued task) however often VideoDB repeats."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from sessions_app.capture import handoff, lifecycle
from sessions_app.live import ingest
from sessions_app.live.events import AlertInput
from sessions_app.models import (
    Alert,
    CaptureSession,
    SearchEntry,
    WebhookDelivery,
    WebhookRejection,
    url_secret,
)
from tests.conftest import TINY_MEETING
from tests.sessions_app.watching import GroupWatch

pytestmark = pytest.mark.django_db


@pytest.fixture
def vdb() -> Client:
    """VideoDB's side of the wire: no cookies, and CSRF checks on as for any stranger."""
    return Client(enforce_csrf_checks=True)


def envelope(session: CaptureSession, event: str = "capture_session.active", **extra) -> dict:
    body = {
        "version": "2",
        "event": event,
        "timestamp": "2026-01-20T12:34:56Z",
        "capture_session_id": session.videodb_id,
        "end_user_id": session.end_user_id,
        "status": event.rsplit(".", 1)[-1],
        "data": {},
    }
    body.update(extra)
    return body


def post(client: Client, session: CaptureSession, body, *, secret: str | None = None):
    secret = secret or url_secret(session.webhook_secret, "lifecycle")
    url = reverse("videodb-webhook", kwargs={"secret": secret})
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json")


def rejections() -> int:
    return sum(WebhookRejection.objects.values_list("count", flat=True))


class TestAccepting:
    def test_a_delivery_is_stored_and_its_task_enqueued_on_commit(
        self, vdb, meeting, django_capture_on_commit_callbacks
    ) -> None:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = post(vdb, meeting, envelope(meeting, event_id="evt-1"))
        assert response.status_code == 200
        assert response.json() == {"status": "accepted"}
        delivery = WebhookDelivery.objects.get()
        assert (delivery.session, delivery.event, delivery.outcome) == (
            meeting,
            "capture_session.active",
            "pending",
        )
        assert json.loads(delivery.raw_body)["event_id"] == "evt-1"
        assert len(callbacks) == 1

    def test_a_repeat_with_the_same_event_id_answers_200_and_changes_nothing(
        self, vdb, meeting, django_capture_on_commit_callbacks
    ) -> None:
        post(vdb, meeting, envelope(meeting, event_id="evt-1"))
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = post(vdb, meeting, envelope(meeting, event_id="evt-1"))
        assert response.status_code == 200
        assert response.json() == {"status": "duplicate"}
        assert WebhookDelivery.objects.count() == 1
        assert callbacks == []

    def test_without_an_event_id_session_event_and_timestamp_identify_a_delivery(
        self, vdb, meeting
    ) -> None:
        post(vdb, meeting, envelope(meeting))
        assert post(vdb, meeting, envelope(meeting)).json() == {"status": "duplicate"}
        later = envelope(meeting, timestamp="2026-01-20T12:35:00Z")
        assert post(vdb, meeting, later).json() == {"status": "accepted"}
        stopped = envelope(meeting, "capture_session.stopped")
        assert post(vdb, meeting, stopped).json() == {"status": "accepted"}
        assert WebhookDelivery.objects.count() == 3

    def test_a_repeat_of_a_delivery_seen_stored_is_answered_without_the_database(
        self, vdb, meeting, django_assert_num_queries
    ) -> None:
        post(vdb, meeting, envelope(meeting, event_id="evt-1"))  # remembered once committed
        post(vdb, meeting, envelope(meeting))
        post(vdb, meeting, envelope(meeting))  # no event id: the database finds it stored
        with django_assert_num_queries(0):
            by_id = post(vdb, meeting, envelope(meeting, event_id="evt-1"))
            derived = post(vdb, meeting, envelope(meeting))
        assert by_id.json() == derived.json() == {"status": "duplicate"}
        assert WebhookDelivery.objects.count() == 2

    def test_what_is_remembered_opens_nothing_to_another_secret_or_session(
        self, vdb, meeting, make_session, owner
    ) -> None:
        post(vdb, meeting, envelope(meeting, event_id="evt-1"))
        forged = post(vdb, meeting, envelope(meeting, event_id="evt-1"), secret="x" * 43)
        assert forged.status_code == 404
        assert rejections() == 1
        # This session's secret with another session's id, the same event id: still a 404.
        other = make_session(owner)
        assert post(vdb, meeting, envelope(other, event_id="evt-1")).status_code == 404
        assert rejections() == 2

    def test_an_unknown_event_is_stored_and_acknowledged_but_not_acted_on(
        self, vdb, meeting, django_capture_on_commit_callbacks
    ) -> None:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = post(vdb, meeting, envelope(meeting, "capture_session.paused"))
        assert response.json() == {"status": "ignored"}
        delivery = WebhookDelivery.objects.get()
        assert delivery.outcome == "ignored"
        assert delivery.processed_at is not None
        assert callbacks == []


class TestRefusing:
    def test_a_forged_secret_is_a_404_and_leaves_only_a_counter(self, vdb, meeting) -> None:
        response = post(vdb, meeting, envelope(meeting), secret="x" * 43)
        assert response.status_code == 404
        assert WebhookDelivery.objects.count() == 0
        assert rejections() == 1

    def test_the_root_secret_itself_does_not_open_the_webhook(self, vdb, meeting) -> None:
        response = post(vdb, meeting, envelope(meeting), secret=meeting.webhook_secret)
        assert response.status_code == 404
        assert WebhookDelivery.objects.count() == 0

    def test_another_sessions_id_under_this_secret_is_a_404(
        self, vdb, meeting, make_session, owner
    ) -> None:
        other = make_session(owner)
        response = post(vdb, meeting, envelope(other))
        assert response.status_code == 404
        assert response.json() == {"error": "no such webhook"}
        assert WebhookDelivery.objects.count() == 0

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            (b"[1, 2]", "must be a JSON object"),
            ({"capture_session_id": "cap-1", "timestamp": "2026-01-20T12:34:56Z"},
             "'event' is required"),
            ({"event": "capture_session.active", "timestamp": "2026-01-20T12:34:56Z"},
             "'capture_session_id' is required"),
            ({"event": 7, "capture_session_id": "cap-1", "timestamp": "2026-01-20T12:34:56Z"},
             "'event' must be a string"),
            ({"event": "capture_session.active", "capture_session_id": "cap-1",
              "timestamp": "yesterday"}, "'timestamp' must be an ISO 8601"),
            ({"event": "capture_session.active", "capture_session_id": "cap-1",
              "timestamp": "2026-01-20T12:34:56"}, "must carry a time zone"),
            ({"event": "capture_session.active", "capture_session_id": "cap-1",
              "timestamp": "2026-01-20T12:34:56Z", "data": []}, "'data' must be a JSON object"),
        ],
    )  # fmt: skip
    def test_malformed_bodies_are_a_400_naming_the_problem(
        self, vdb, meeting, body, message: str
    ) -> None:
        response = post(vdb, meeting, body)
        assert response.status_code == 400
        assert message in response.json()["error"]
        assert WebhookDelivery.objects.count() == 0

    def test_a_body_over_64_kib_is_a_413(self, vdb, meeting) -> None:
        body = envelope(meeting, data={"padding": "x" * (64 * 1024)})
        response = post(vdb, meeting, body)
        assert response.status_code == 413
        assert WebhookDelivery.objects.count() == 0

    @pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
    def test_only_post_is_accepted(self, vdb, meeting, method: str) -> None:
        url = reverse(
            "videodb-webhook", kwargs={"secret": url_secret(meeting.webhook_secret, "lifecycle")}
        )
        response = getattr(vdb, method)(url)
        assert response.status_code == 405
        assert response["Allow"] == "POST"


class TestVideoDBExportingByItself:
    """VideoDB's sample apps stop a capture and wait for `exported`: nobody asks for it."""

    def test_its_exported_webhook_stores_the_video_once_without_copilot_asking(
        self, vdb, videodb, owner
    ) -> None:
        session = handoff.create_session(owner, title="Retro", audio_prompt="", visual_prompt="")
        token = handoff.mint_client_token(session).token
        videodb.control.simulate(session.videodb_id, TINY_MEETING, speed=20, client_token=token)
        videodb.control.wait_for_status(session.videodb_id, "exported")
        sent = [d["body"] for d in videodb.control.deliveries(session.videodb_id, kind="webhook")]
        (exported,) = [b for b in sent if b["event"] == "capture_session.exported"]
        for body in sent + sent:  # each at least once, as VideoDB promises
            assert post(vdb, session, body).status_code == 200
        assert WebhookDelivery.objects.filter(session=session).count() == len(sent)

        for delivery in WebhookDelivery.objects.filter(session=session).order_by("pk"):
            lifecycle.process_delivery(delivery.pk)
        session.refresh_from_db()
        assert session.status == "exported"
        assert (session.exported_video_id, session.player_url, session.stream_url) == (
            exported["data"]["exported_video_id"],
            exported["data"]["player_url"],
            exported["data"]["stream_url"],
        )
        asked = f"POST collection/default/capture/session/{session.videodb_id}/export"
        assert asked not in videodb.control.request_counts()


class TestAlertCallbacks:
    def callback(self, **extra) -> dict:
        body = {
            "event_id": "evt-pricing",
            "label": "pricing",
            "confidence": 0.92,
            "explanation": "The presenter shows the price list",
            "timestamp": "2026-01-20T12:40:00Z",
            "start_time": 1710000045.1,
            "end_time": 1710000047.8,
            "stream_url": "https://example.test/s.m3u8",
            "player_url": "https://example.test/p",
        }
        body.update(extra)
        return body

    def post(self, client, stream, body, secret=None):
        url = reverse(
            "videodb-alert-callback",
            kwargs={
                "secret": secret
                or url_secret(stream.session.webhook_secret, f"alert:{stream.videodb_id}"),
                "rtstream_id": stream.videodb_id,
            },
        )
        data = body if isinstance(body, bytes) else json.dumps(body)
        return client.post(url, data=data, content_type="application/json")

    def test_a_callback_alone_is_held_unconfirmed_once_and_shown_nowhere(
        self, vdb, mic, owner_client
    ) -> None:
        assert self.post(vdb, mic, self.callback()).json() == {"status": "unconfirmed"}
        assert self.post(vdb, mic, self.callback()).json() == {"status": "duplicate"}
        assert Alert.objects.count() == 0  # what every page, export and search reads
        held = Alert.all_objects.get()
        assert (held.label, held.start_ms, held.end_ms, held.confirmed) == (
            "pricing",
            1710000045100,
            1710000047800,
            False,
        )
        assert held.confidence == pytest.approx(0.92)
        assert held.text == "The presenter shows the price list"
        assert held.seq == 0  # no number a browser could be sent
        assert not SearchEntry.objects.filter(alert=held).exists()
        history = owner_client.get(reverse("session-history", args=[mic.session_id]))
        assert "presenter shows the price list" not in history.text

    def test_the_socket_copy_confirms_a_held_alert_and_shows_it_once(self, vdb, mic) -> None:
        with GroupWatch(mic.session_id) as watch:
            self.post(vdb, mic, self.callback())
            assert watch.received() == []
            # The relay's path: the WebSocket's alert data carries epoch milliseconds.
            socket_event = AlertInput(
                label="pricing", start_ms=1710000045100, end_ms=1710000047800, confidence=0.92
            )
            update = ingest.store(mic, socket_event, heard_now=True)
            alert = Alert.objects.get()
            assert alert.confirmed and alert.seq == 1
            assert update is not None and update["seq"] == alert.seq
            assert ingest.store(mic, socket_event, heard_now=True) is None
        assert Alert.all_objects.count() == 1
        assert SearchEntry.objects.filter(alert=alert).exists()

    def test_an_alert_the_socket_brought_first_is_not_held_again(self, vdb, mic) -> None:
        socket_event = AlertInput(label="pricing", start_ms=1710000045100, end_ms=1710000047800)
        assert ingest.store(mic, socket_event, heard_now=True) is not None
        assert self.post(vdb, mic, self.callback()).json() == {"status": "duplicate"}
        assert Alert.objects.get().confirmed

    def test_the_sessions_lifecycle_secret_does_not_open_its_alert_callbacks(
        self, vdb, mic
    ) -> None:
        leaked = url_secret(mic.session.webhook_secret, "lifecycle")
        for secret in (leaked, mic.session.webhook_secret):
            assert self.post(vdb, mic, self.callback(), secret=secret).status_code == 404
        assert Alert.all_objects.count() == 0

    def test_one_streams_alert_url_does_not_open_another_streams(
        self, vdb, mic, make_stream
    ) -> None:
        screen = make_stream(mic.session, name="display:1", videodb_id="rts-screen")
        leaked = url_secret(mic.session.webhook_secret, f"alert:{mic.videodb_id}")
        assert self.post(vdb, screen, self.callback(), secret=leaked).status_code == 404
        assert self.post(vdb, mic, self.callback(), secret=leaked).status_code == 200

    def test_a_session_made_before_per_url_secrets_still_opens_with_its_old_secret(
        self, vdb, mic, meeting
    ) -> None:
        CaptureSession.objects.filter(pk=meeting.pk).update(webhook_secret="o" * 43)
        mic.session.refresh_from_db()
        assert self.post(vdb, mic, self.callback(), secret="o" * 43).status_code == 200
        assert post(vdb, mic.session, envelope(mic.session), secret="o" * 43).status_code == 200

    def test_a_forged_secret_stores_nothing(self, vdb, mic) -> None:
        response = self.post(vdb, mic, self.callback(), secret="forged")
        assert response.status_code == 404
        assert Alert.all_objects.count() == 0

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"label": ""}, "'label' must be a non-empty string"),
            ({"confidence": 3}, "'confidence' must be between 0 and 1"),
            ({"confidence": "high"}, "'confidence' must be a number"),
            ({"start_time": None}, "'start_time' is required"),
            ({"start_time": float("nan")}, "'start_time' must be a number"),
            ({"end_time": 1}, "'end_time' must not be before 'start_time'"),
        ],
    )
    def test_malformed_callbacks_are_a_400(self, vdb, mic, change: dict, message: str) -> None:
        response = self.post(vdb, mic, self.callback(**change))
        assert response.status_code == 400
        assert message in response.json()["error"]
        assert Alert.objects.count() == 0


class TestHostileInputIsRefusedNotAnError:
    """Input meant to break the receiver gets a 400 and leaves nothing behind; none of it
    reaches the database or raises (the test client re-raises any exception)."""

    def test_deeply_nested_json_to_the_webhook_is_a_400_before_the_secret(
        self, vdb, meeting
    ) -> None:
        body = b'{"a":' * 10_000 + b"1" + b"}" * 10_000  # 60 KB, under the size limit
        response = post(vdb, meeting, body, secret="x" * 43)
        assert response.status_code == 400
        assert "nests too deeply" in response.json()["error"]
        assert WebhookDelivery.objects.count() == 0

    def test_deeply_nested_json_to_the_alert_callback_is_a_400(self, vdb, mic) -> None:
        response = TestAlertCallbacks().post(vdb, mic, b"[" * 30_000, secret="x" * 43)
        assert response.status_code == 400
        assert Alert.objects.count() == 0

    @pytest.mark.parametrize(
        "change",
        [
            {"start_time": 1e308},
            {"start_time": -1e308},
            {"start_time": 10**3999},
            {"end_time": 1e308},
            {"end_time": 10**3999},
        ],
        ids=["1e308", "-1e308", "4000 digits", "end 1e308", "end 4000 digits"],
    )
    def test_an_alert_time_too_large_to_hold_is_a_400(self, vdb, mic, change) -> None:
        body = TestAlertCallbacks().callback(**change)
        response = TestAlertCallbacks().post(vdb, mic, body)
        assert response.status_code == 400
        assert "at most" in response.json()["error"]
        assert Alert.objects.count() == 0

    @pytest.mark.parametrize(
        "timestamp", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
    )
    def test_a_timestamp_outside_what_the_database_holds_is_a_400_with_a_valid_secret(
        self, vdb, meeting, timestamp
    ) -> None:
        response = post(vdb, meeting, envelope(meeting, timestamp=timestamp))
        assert response.status_code == 400
        assert "'timestamp' is out of range" in response.json()["error"]
        assert WebhookDelivery.objects.count() == 0

    def test_an_offset_beyond_what_postgresql_takes_is_stored_as_the_same_instant(
        self, vdb, meeting
    ) -> None:
        response = post(vdb, meeting, envelope(meeting, timestamp="2026-01-20T12:34:56+23:00"))
        assert response.status_code == 200
        stored = WebhookDelivery.objects.get()
        assert stored.event_timestamp.isoformat() == "2026-01-19T13:34:56+00:00"
