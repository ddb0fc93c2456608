"""Webhook secrets never reach the logs (copilot/logredact.py)."""

from __future__ import annotations

import io
import logging

import pytest

from copilot.logredact import redact

pytestmark = pytest.mark.django_db


@pytest.fixture
def console() -> io.StringIO:
    """What the configured console handler writes, for the length of a test."""
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler))
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def test_a_rejected_delivery_is_logged_without_the_secret_in_its_path(client, console) -> None:
    secret = "s3cr3t-token-from-the-url"

    answer = client.post(f"/webhooks/videodb/{secret}/", data="{}", content_type="application/json")

    assert answer.status_code == 400  # an empty envelope, refused before the secret is checked
    logged = console.getvalue()
    assert "/webhooks/videodb/[secret]/" in logged
    assert secret not in logged


def test_alert_callback_paths_are_redacted_and_other_paths_are_left_alone() -> None:
    assert redact("Not Found: /webhooks/videodb/abc/alerts/rts-1/") == (
        "Not Found: /webhooks/videodb/[secret]/alerts/rts-1/"
    )
    assert redact("Not Found: /sessions/12/") == "Not Found: /sessions/12/"
