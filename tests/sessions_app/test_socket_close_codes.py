"""Every way the live socket closes, as a real client sees it through a real Daphne.

Channels' test communicator hands a close code to the test as it was given; Daphne hands it
to Autobahn, which refuses anything but a plain int. So these tests speak to ``manage.py
serve`` with the ``websockets`` client and read the code off the wire.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sessions_app.viewers import sharing
from tests.conftest import start_server
from tests.sessions_app.conftest import session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

IDLE_SECONDS = 3


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory) -> str:
    """One Daphne for the module, closing sockets that are silent for IDLE_SECONDS."""
    url, process = start_server(
        Path(tmp_path_factory.mktemp("daphne")), LIVE_SOCKET_IDLE_SECONDS=str(IDLE_SECONDS)
    )
    try:
        yield url, process
    finally:
        process.stop()


@pytest.fixture
def url(server) -> str:
    return server[0]


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


async def headers_for(base: str, user=None) -> dict[str, str]:
    headers = {"Origin": base}
    if user is not None:
        headers["Cookie"] = await sync_to_async(session_cookie)(user)
    return headers


async def close_code(socket, *, ping_every: float | None = None, within: float = 15) -> int:
    """Read until the server closes; the code it sent. Pings keep an idle check away."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            if ping_every is not None:
                await socket.send(json.dumps({"type": "ping"}))
            await asyncio.wait_for(socket.recv(), timeout=ping_every or within)
        except TimeoutError:
            continue
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the connection dropped without a close frame"
            return closed.rcvd.code
    raise AssertionError("the server never closed the socket")


async def owners_socket(url: str, owner, meeting):
    return connect(
        ws_url(url, f"/ws/sessions/{meeting.pk}/"), additional_headers=await headers_for(url, owner)
    )


async def test_a_message_that_is_not_the_protocol_closes_with_4400(url, owner, meeting) -> None:
    async with await owners_socket(url, owner, meeting) as socket:
        await socket.send("hello")
        assert await close_code(socket) == 4400


async def test_deeply_nested_json_closes_with_4400_not_1011(url, owner, meeting, server) -> None:
    async with await owners_socket(url, owner, meeting) as socket:
        await socket.send("[" * 4000)
        assert await close_code(socket) == 4400
    assert "RecursionError" not in server[1].log()


async def test_an_oversized_message_closes_with_4413(url, owner, meeting) -> None:
    async with await owners_socket(url, owner, meeting) as socket:
        await socket.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
        assert await close_code(socket) == 4413


async def test_a_silent_socket_is_closed_with_4408(url, owner, meeting) -> None:
    async with await owners_socket(url, owner, meeting) as socket:
        assert await close_code(socket, within=IDLE_SECONDS + 5) == 4408


async def test_a_link_that_expires_while_open_closes_with_4403(url, owner, meeting) -> None:
    expires = timezone.now() + timedelta(seconds=1.5)
    link = await sync_to_async(sharing.create_link)(meeting, owner, expires_at=expires)
    path = f"/ws/sessions/{meeting.pk}/?share={link.token}"
    async with connect(ws_url(url, path), additional_headers={"Origin": url}) as socket:
        assert await close_code(socket, ping_every=0.5) == 4403


async def test_revoking_a_link_closes_its_socket_with_4403(url, owner, meeting) -> None:
    link = await sync_to_async(sharing.create_link)(meeting, owner)
    path = f"/ws/sessions/{meeting.pk}/?share={link.token}"
    async with connect(ws_url(url, path), additional_headers={"Origin": url}) as socket:
        await socket.send(json.dumps({"type": "ping"}))
        await socket.recv()
        # The owner revokes it on the same server, as from the session page.
        cookie = await sync_to_async(session_cookie)(owner)
        # By hand: the CSRF cookie is Secure, and a client keeps it off plain http.
        async with aiohttp.ClientSession(
            base_url=url, cookie_jar=aiohttp.DummyCookieJar()
        ) as browser:
            page = await browser.get(f"/sessions/{meeting.pk}/", headers={"Cookie": cookie})
            token = page.cookies["csrftoken"].value
            response = await browser.post(
                f"/sessions/{meeting.pk}/links/{link.pk}/revoke/",
                headers={
                    "Cookie": f"{cookie}; csrftoken={token}",
                    "X-CSRFToken": token,
                    "Origin": url,
                },
                allow_redirects=False,
            )
            assert response.status == 302
        assert await close_code(socket, ping_every=0.5) == 4403


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
async def test_no_permission_is_refused_at_the_handshake(url, meeting, stranger, who) -> None:
    headers = await headers_for(url, stranger if who == "stranger" else None)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(url, f"/ws/sessions/{meeting.pk}/"), additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403


async def test_a_path_with_no_route_is_refused_cleanly(url, owner, server) -> None:
    headers = await headers_for(url, owner)
    before = len(server[1].log())
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(url, "/ws/sessions/abc/"), additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403
    await asyncio.sleep(0.3)
    logged = server[1].log()[before:]
    assert "No route found" not in logged
    assert "ValueError" not in logged
