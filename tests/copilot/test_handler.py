"""Django's ASGI handler as Copilot runs it (copilot/handler.py): the middleware chain and
the view in one hand-off to the request's thread, that thread reused by the next request,
async views still answered."""

from __future__ import annotations

import threading

import pytest
from django.core.signals import request_started
from django.urls import reverse

from copilot.handler import SyncChainASGIHandler
from tests.copilot.test_webhook_route import call

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def test_a_page_is_served_through_the_whole_middleware_chain() -> None:
    answer = call(SyncChainASGIHandler(), reverse("login"), method="GET")

    assert answer.status == 200
    assert "content-security-policy" in answer.headers
    assert "csrftoken" in answer.headers["set-cookie"]


def test_an_async_view_is_answered_through_the_sync_chain() -> None:
    answer = call(SyncChainASGIHandler(), reverse("healthz"), method="GET")

    assert answer.status in (200, 503)  # what the checks say is theirs; that it answers is ours
    assert set(answer.json()["checks"]) >= {"database", "channel_layer"}


def test_one_request_after_another_runs_on_the_same_request_thread() -> None:
    # The Thread objects, kept: a new thread may get an ended one's ident, never its object.
    threads: list[threading.Thread] = []

    def note_thread(**kwargs: object) -> None:
        threads.append(threading.current_thread())

    handler = SyncChainASGIHandler()
    request_started.connect(note_thread, dispatch_uid="test-note-thread")
    try:
        for _ in range(3):
            assert call(handler, reverse("login"), method="GET").status == 200
    finally:
        request_started.disconnect(dispatch_uid="test-note-thread")

    assert len(threads) == 3 and len(set(threads)) == 1
    assert threads[0] is not threading.current_thread()  # a request thread, not the caller's
