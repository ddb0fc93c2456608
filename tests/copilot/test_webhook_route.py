"""The ASGI route that serves VideoDB's webhooks past Django's request handler: the same
answers as the views give through Django (tests/sessions_app/test_webhooks.py), the checks a
machine's request still gets (host, method, size, SSL redirect), Django's answer to an
exception, and every other request left to Django.

The route runs the views in threads of its own, so these tests commit (``transaction=True``):
those threads use connections of their own, as they do in the server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from copilot.handler import SyncChainASGIHandler
from copilot.webhook_route import MIDDLEWARE, WebhookRoute
from sessions_app.capture import deliveries
from sessions_app.models import (
    Alert,
    CaptureSession,
    RTStream,
    WebhookDelivery,
    WebhookRejection,
    url_secret,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


class Answer:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = {name.decode().lower(): value.decode() for name, value in headers}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: WebhookRoute,
    path: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    host: str = "127.0.0.1",
    chunk: int | None = None,
) -> Answer:
    """One request through ``app`` as Daphne hands it over (the body in ``chunk``-sized
    messages), and the answer it sends."""
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [
        {"type": "http.request", "body": part, "more_body": n < len(chunks) - 1}
        for n, part in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # nothing more: as a client that waits for its answer
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", host.encode()), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=20))
    start, *bodies = sent
    return Answer(start["status"], start["headers"], b"".join(m["body"] for m in bodies))


@pytest.fixture
def route() -> WebhookRoute:
    return WebhookRoute(SyncChainASGIHandler())


def lifecycle_path(session: CaptureSession) -> str:
    secret = url_secret(session.webhook_secret, "lifecycle")
    return reverse("videodb-webhook", kwargs={"secret": secret})


def envelope(session: CaptureSession, event_id: str = "evt-1") -> bytes:
    return json.dumps(
        {
            "version": "2",
            "event": "capture_session.active",
            "event_id": event_id,
            "timestamp": "2026-01-20T12:34:56Z",
            "capture_session_id": session.videodb_id,
            "status": "active",
            "data": {},
        }
    ).encode()


def test_a_delivery_is_stored_once_and_a_repeat_is_acknowledged(route, meeting) -> None:
    first = call(route, lifecycle_path(meeting), envelope(meeting))
    again = call(route, lifecycle_path(meeting), envelope(meeting))

    assert (first.status, first.json()) == (200, {"status": "accepted"})
    assert (again.status, again.json()) == (200, {"status": "duplicate"})
    assert WebhookDelivery.objects.get().session == meeting


def test_a_repeat_seen_stored_is_answered_without_a_worker_thread_and_as_the_view_would(
    meeting,
) -> None:
    route = WebhookRoute(SyncChainASGIHandler())
    call(route, lifecycle_path(meeting), envelope(meeting))  # stored: committed, remembered
    # Stored without this process seeing it: the view finds it in the database, answers,
    # and only from then on is it remembered.
    stored = envelope(meeting, event_id="evt-2")
    deliveries.insert(meeting.pk, deliveries.parse_envelope(stored), stored.decode())
    by_view = call(route, lifecycle_path(meeting), stored)
    route._executor.shutdown()  # from here a call that needs a worker thread fails

    answer = call(route, lifecycle_path(meeting), stored)

    assert (by_view.status, by_view.json()) == (200, {"status": "duplicate"})
    assert (answer.status, answer.headers, answer.body) == (
        by_view.status, by_view.headers, by_view.body,
    )  # fmt: skip
    assert WebhookDelivery.objects.count() == 2
    # Anything not seen stored still needs the view: a new delivery, another secret.
    with pytest.raises(RuntimeError, match="after shutdown"):
        call(route, lifecycle_path(meeting), envelope(meeting, event_id="evt-3"))
    with pytest.raises(RuntimeError, match="after shutdown"):
        call(route, "/webhooks/videodb/forged/", envelope(meeting))


def test_the_answer_carries_the_machine_headers_and_none_of_the_browser_ones(
    route, meeting
) -> None:
    answer = call(route, lifecycle_path(meeting), envelope(meeting))

    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == str(len(answer.body))
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    # No session, CSRF cookie or CSP: the middleware that makes them did not run.
    assert "set-cookie" not in answer.headers
    assert "content-security-policy" not in answer.headers


def test_an_alert_callback_is_held_unconfirmed(route, mic: RTStream) -> None:
    secret = url_secret(mic.session.webhook_secret, f"alert:{mic.videodb_id}")
    path = reverse(
        "videodb-alert-callback", kwargs={"secret": secret, "rtstream_id": mic.videodb_id}
    )
    body = json.dumps(
        {
            "event_id": "evt-pricing", "label": "pricing", "confidence": 0.9,
            "explanation": "Prices on screen", "timestamp": "2026-01-20T12:40:00Z",
            "start_time": 1710000045.1, "end_time": 1710000047.8,
        }
    ).encode()  # fmt: skip

    answer = call(route, path, body)

    assert (answer.status, answer.json()) == (200, {"status": "unconfirmed"})
    assert Alert.all_objects.get().label == "pricing"


def test_a_forged_secret_is_a_404_and_leaves_only_a_counter(route, meeting) -> None:
    answer = call(route, "/webhooks/videodb/forged/", envelope(meeting))

    assert (answer.status, answer.json()) == (404, {"error": "no such webhook"})
    assert WebhookDelivery.objects.count() == 0
    assert WebhookRejection.objects.get().reason == "unknown_session_or_secret"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_only_post_is_accepted(route, meeting, method: str) -> None:
    answer = call(route, lifecycle_path(meeting), method=method)

    assert answer.status == 405
    assert answer.headers["allow"] == "POST"


def test_a_body_over_the_limit_sent_in_parts_is_a_413(route, meeting) -> None:
    limit = django_settings.WEBHOOK_MAX_BODY_BYTES
    answer = call(route, lifecycle_path(meeting), b"x" * (3 * limit), chunk=limit // 4)

    assert answer.status == 413
    assert WebhookDelivery.objects.count() == 0


def test_a_host_not_allowed_is_a_400_and_stores_nothing(route, meeting) -> None:
    answer = call(route, lifecycle_path(meeting), envelope(meeting), host="evil.example")

    assert answer.status == 400
    assert WebhookDelivery.objects.count() == 0


def test_an_error_in_the_view_is_logged_and_answered_500_so_videodb_retries(
    route, meeting, monkeypatch, caplog
) -> None:
    def broken(envelope: deliveries.Envelope) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(deliveries, "find_claim", broken)
    answer = call(route, lifecycle_path(meeting), envelope(meeting))

    assert answer.status == 500
    logged = [r for r in caplog.records if r.name == "django.request" and r.exc_info]
    assert "the database went away" in str(logged[0].exc_info[1])


def test_with_ssl_redirect_on_a_plain_http_delivery_is_redirected(settings, meeting) -> None:
    settings.SECURE_SSL_REDIRECT = True
    route = WebhookRoute(SyncChainASGIHandler())  # middleware read their settings when built

    answer = call(route, lifecycle_path(meeting), envelope(meeting))

    assert answer.status == 301
    assert answer.headers["location"].startswith("https://127.0.0.1/webhooks/videodb/")
    assert WebhookDelivery.objects.count() == 0


def test_every_other_request_goes_to_django(route) -> None:
    assert call(route, "/webhooks/videodb/", method="GET").status == 404
    login = call(route, reverse("login"), method="GET")
    assert login.status == 200
    assert "content-security-policy" in login.headers  # Django's whole chain ran


def test_the_route_runs_settings_middleware_that_serves_a_machine_in_settings_order() -> None:
    positions = [django_settings.MIDDLEWARE.index(path) for path in MIDDLEWARE]
    assert positions == sorted(positions)
