"""Publishing a live update: rendered once by the publisher, sent once to the session's
group, encoded once for all the viewers a process holds, and forwarded by each viewer's
socket unchanged (the fragment is the WebSocket text frame)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings

from sessions_app.live import broadcast
from tests.sessions_app.conftest import say
from tests.sessions_app.test_consumers import opened, resume, socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

VIEWERS = 4


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """A new layer per test: each test runs its own event loop."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def counting(target: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Count the calls of ``target.name`` while it keeps doing its work (a spy)."""
    calls: list[Any] = []
    real: Callable[..., Any] = getattr(target, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, spy)
    return calls


async def viewers_of(meeting, owner) -> list:
    sockets = []
    for _ in range(VIEWERS):
        communicator = await opened(await socket(meeting.pk, user=owner))
        await resume(communicator, last_seq=0)
        sockets.append(communicator)
    return sockets


async def test_an_update_goes_to_the_group_once_and_reaches_each_viewer_unchanged(
    owner, meeting, mic, monkeypatch
) -> None:
    layer = get_channel_layer()
    sockets = await viewers_of(meeting, owner)
    sends = counting(layer, "group_send", monkeypatch)
    line = await sync_to_async(say)(mic, "Shipping on Friday.", 1000, final=True)
    update = await sync_to_async(broadcast.message)(line, meeting)

    await broadcast.apublish(meeting.pk, [update])

    assert len(sends) == 1  # one send for every viewer, not one per viewer
    for communicator in sockets:
        # The frame is the published fragment, character for character.
        assert await communicator.receive_from(timeout=5) == update["html"]
        await communicator.disconnect()


@pytest.mark.services
async def test_an_update_is_encoded_once_for_all_the_viewers_of_a_process(
    owner, meeting, mic, monkeypatch
) -> None:
    assert settings.REDIS_URL
    layer = get_channel_layer()
    # Group memberships outlive a test in Redis (a day), and session ids repeat between
    # tests: start from no members, or another process's stale member counts a pack.
    await layer.flush()
    sockets = await viewers_of(meeting, owner)
    # channels_redis packs a group message once per process that holds members (their
    # channels share the process's prefix), not once per member.
    packs = counting(layer, "serialize", monkeypatch)
    line = await sync_to_async(say)(mic, "Shipping on Friday.", 1000, final=True)
    update = await sync_to_async(broadcast.message)(line, meeting)

    await broadcast.apublish(meeting.pk, [update])

    for communicator in sockets:
        assert await communicator.receive_from(timeout=5) == update["html"]
        await communicator.disconnect()
    assert len(packs) == 1
