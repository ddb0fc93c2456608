"""On Redis, a viewer whose meeting goes quiet for two minutes keeps its socket: through a
real Daphne, the Redis channel layer and the page's own heartbeat, the next update arrives."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from asgiref.sync import sync_to_async

from sessions_app.live import broadcast
from tests.conftest import start_server
from tests.sessions_app.conftest import say, session_cookie

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

IDLE_SECONDS = 125
PING_EVERY = 20  # what static/copilot/live.js does (LIVE_PING_SECONDS)


async def test_a_viewer_idle_for_two_minutes_stays_connected(
    owner, meeting, mic, tmp_path: Path
) -> None:
    url, server = await sync_to_async(start_server)(tmp_path)
    try:
        cookie = await sync_to_async(session_cookie)(owner)
        headers = {"Cookie": cookie, "Origin": url}
        async with (
            aiohttp.ClientSession(headers=headers) as client,
            client.ws_connect(url.replace("http", "ws") + f"/ws/sessions/{meeting.pk}/") as ws,
        ):
            await ws.send_str(json.dumps({"type": "resume", "last_seq": 0}))
            began = time.monotonic()
            next_ping = began + PING_EVERY
            while time.monotonic() - began < IDLE_SECONDS:
                try:
                    message = await ws.receive(timeout=max(0.1, next_ping - time.monotonic()))
                    assert message.type == aiohttp.WSMsgType.TEXT, f"socket ended: {message}"
                except TimeoutError:
                    pass
                if time.monotonic() >= next_ping:
                    await ws.send_str(json.dumps({"type": "ping"}))
                    next_ping += PING_EVERY

            segment = await sync_to_async(say)(mic, "Back from the break.", 1000, final=True)
            await sync_to_async(broadcast.publish)(meeting, [broadcast.message(segment, meeting)])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                message = await ws.receive(timeout=deadline - time.monotonic())
                assert message.type == aiohttp.WSMsgType.TEXT, f"socket ended: {message}"
                if f'id="seg-{segment.pk}"' in message.data:
                    assert "Back from the break." in message.data
                    break
            else:
                raise AssertionError("the update never arrived")
    finally:
        await sync_to_async(server.stop)()
        await asyncio.sleep(0)
