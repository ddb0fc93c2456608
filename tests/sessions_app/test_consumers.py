"""The live socket, through the real ASGI application: Origin check, session auth, routing.

Each test speaks the protocol a browser speaks (sessions_app/consumers.py) and asserts
the close codes and the fragments that arrive, and with ``receive_nothing`` what must not.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.db import connections, transaction
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from copilot import health
from copilot.asgi import application
from sessions_app import consumers
from sessions_app.consumers import MAX_MESSAGE_BYTES
from sessions_app.live import broadcast
from sessions_app.models import (
    CaptureSession,
    RTStream,
    SessionViewer,
    ShareLink,
    TranscriptSegment,
)
from sessions_app.viewers import sharing
from tests.conftest import wait_until
from tests.redis_shards import RedisServer
from tests.sessions_app.conftest import fire, note, say, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """A new layer per test: each test runs its own event loop."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def cookie_for(user) -> bytes:
    return session_cookie(user).encode()


async def socket(session_id: int, *, user=None, share: str = "", origin: bytes = ORIGIN[1]):
    path = f"/ws/sessions/{session_id}/" + (f"?share={share}" if share else "")
    headers = [(b"origin", origin)]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(cookie_for)(user)))
    return WebsocketCommunicator(application, path, headers=headers)


async def opened(communicator: WebsocketCommunicator) -> WebsocketCommunicator:
    connected, code = await communicator.connect(timeout=5)
    assert connected, f"refused with {code}"
    return communicator


async def refused(communicator: WebsocketCommunicator) -> int | None:
    connected, code = await communicator.connect(timeout=5)
    assert not connected
    return code


async def closed_with(communicator: WebsocketCommunicator) -> int:
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    return message["code"]


def opened_share_page(user, link: ShareLink) -> None:
    """``user``, signed in, opens ``link``'s share page: the session is shared with them."""
    client = Client()
    client.force_login(user)
    assert client.get(reverse("share-page", args=[link.token])).status_code == 200


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def resume(communicator: WebsocketCommunicator, last_seq: int) -> list[str]:
    """Send a resume and collect the fragments up to the synced marker."""
    await communicator.send_to(text_data=json.dumps({"type": "resume", "last_seq": last_seq}))
    fragments = []
    while True:
        fragment = await communicator.receive_from(timeout=5)
        if 'id="live-synced"' in fragment:
            return [*fragments, fragment]
        fragments.append(fragment)


def item_ids(fragments: list[str]) -> list[str]:
    ids = []
    for fragment in fragments:
        match = re.match(r'\s*<li id="((?:seg|ins|alert)-\d+)"', fragment)
        if match:
            ids.append(match.group(1))
    return ids


class TestWhoMayConnect:
    async def test_the_owner_is_accepted_and_gets_what_the_relay_publishes(
        self, owner, meeting, mic
    ) -> None:
        communicator = await opened(await socket(meeting.pk, user=owner))
        segment = await sync_to_async(say)(mic, "Shipping on Friday", 1000)
        await broadcast.apublish(
            meeting.pk, [await sync_to_async(broadcast.message)(segment, meeting)]
        )
        fragment = await communicator.receive_from(timeout=5)
        assert f'id="seg-{segment.pk}"' in fragment
        assert 'hx-swap-oob="true"' in fragment
        assert "Shipping on Friday" in fragment
        await communicator.disconnect()

    async def test_a_share_links_holder_is_accepted_without_an_account(
        self, meeting, mic, share_link
    ) -> None:
        communicator = await opened(await socket(meeting.pk, share=share_link.token))
        segment = await sync_to_async(say)(mic, "Welcome, everyone", 1000)
        await broadcast.apublish(
            meeting.pk, [await sync_to_async(broadcast.message)(segment, meeting)]
        )
        assert "Welcome, everyone" in await communicator.receive_from(timeout=5)
        await communicator.disconnect()

    async def test_a_viewer_is_read_only_anything_but_resume_and_ping_closes(
        self, meeting, mic, share_link
    ) -> None:
        communicator = await opened(await socket(meeting.pk, share=share_link.token))
        await communicator.send_json_to(
            {"type": "rename", "stream": mic.pk, "speaker_label": "Mallory"}
        )
        assert await closed_with(communicator) == 4400
        await mic.arefresh_from_db()
        assert mic.speaker_label == ""

    async def test_a_stranger_is_refused_as_if_the_session_did_not_exist(
        self, stranger, meeting
    ) -> None:
        assert await refused(await socket(meeting.pk, user=stranger)) == 4404

    async def test_an_unknown_session_is_refused(self, owner, meeting) -> None:
        assert await refused(await socket(meeting.pk + 1000, user=owner)) == 4404

    async def test_anonymous_is_refused(self, meeting) -> None:
        assert await refused(await socket(meeting.pk)) == 4401

    async def test_a_wrong_token_is_refused(self, meeting) -> None:
        assert await refused(await socket(meeting.pk, share="not-a-token")) == 4403

    async def test_a_link_to_another_session_is_refused(self, meeting, make_session, owner) -> None:
        other = await sync_to_async(make_session)(owner)
        link = await sync_to_async(sharing.create_link)(other, owner)
        assert await refused(await socket(meeting.pk, share=link.token)) == 4403

    async def test_a_revoked_link_is_refused(self, meeting, revoked_link) -> None:
        assert await refused(await socket(meeting.pk, share=revoked_link.token)) == 4403

    async def test_an_expired_link_is_refused(self, meeting, expired_link) -> None:
        assert await refused(await socket(meeting.pk, share=expired_link.token)) == 4403

    async def test_a_signed_in_user_who_opened_a_share_link_is_accepted_without_its_token(
        self, meeting, mic, share_link, make_user
    ) -> None:
        # The rule the history pages follow (sessions_app/viewers/access.py), on the socket too.
        vera = await sync_to_async(make_user)("vera")
        await sync_to_async(opened_share_page)(vera, share_link)
        communicator = await opened(await socket(meeting.pk, user=vera))
        segment = await sync_to_async(say)(mic, "Welcome, Vera", 1000)
        await broadcast.apublish(
            meeting.pk, [await sync_to_async(broadcast.message)(segment, meeting)]
        )
        assert "Welcome, Vera" in await communicator.receive_from(timeout=5)
        await communicator.disconnect()

    async def test_a_signed_in_user_whose_shared_link_was_revoked_is_refused(
        self, meeting, share_link, make_user
    ) -> None:
        vera = await sync_to_async(make_user)("vera")
        await sync_to_async(opened_share_page)(vera, share_link)
        await sync_to_async(sharing.revoke)(share_link)
        assert await SessionViewer.objects.filter(user=vera).aexists()
        assert await refused(await socket(meeting.pk, user=vera)) == 4404

    async def test_a_page_on_another_site_is_refused_even_with_the_owners_cookie(
        self, owner, meeting
    ) -> None:
        await refused(await socket(meeting.pk, user=owner, origin=b"https://evil.example"))


class TestRevoking:
    async def test_revoking_a_link_closes_its_open_sockets_at_once_and_only_those(
        self, owner, meeting, share_link
    ) -> None:
        other_link = await sync_to_async(sharing.create_link)(meeting, owner)
        revoked_viewer = await opened(await socket(meeting.pk, share=share_link.token))
        other_viewer = await opened(await socket(meeting.pk, share=other_link.token))
        owners_page = await opened(await socket(meeting.pk, user=owner))

        client = Client()
        await sync_to_async(client.force_login)(owner)
        response = await sync_to_async(client.post)(
            f"/sessions/{meeting.pk}/links/{share_link.pk}/revoke/"
        )
        assert response.status_code == 302

        assert await closed_with(revoked_viewer) == 4403
        assert await other_viewer.receive_nothing(timeout=0.3)
        assert await owners_page.receive_nothing(timeout=0.1)
        assert (await ShareLink.objects.aget(pk=share_link.pk)).revoked_at is not None
        # And it cannot come back.
        assert await refused(await socket(meeting.pk, share=share_link.token)) == 4403
        await other_viewer.disconnect()
        await owners_page.disconnect()

    async def test_revoking_from_the_admin_closes_the_links_open_sockets(
        self, owner, staff, meeting, share_link
    ) -> None:
        other_link = await sync_to_async(sharing.create_link)(meeting, owner)
        revoked_viewer = await opened(await socket(meeting.pk, share=share_link.token))
        other_viewer = await opened(await socket(meeting.pk, share=other_link.token))

        action = {"action": "revoke_links", "_selected_action": [share_link.pk]}
        staff_client = await sync_to_async(signed_in)(staff)
        response = await sync_to_async(staff_client.post)(
            reverse("admin:sessions_app_sharelink_changelist"), action
        )
        assert response.status_code == 302

        assert await closed_with(revoked_viewer) == 4403
        assert await other_viewer.receive_nothing(timeout=0.3)
        await other_viewer.disconnect()

    async def test_sockets_close_once_the_revocation_is_committed_not_before(
        self, meeting, share_link
    ) -> None:
        viewer = await opened(await socket(meeting.pk, share=share_link.token))
        commit = threading.Event()

        def revoke_in_a_slow_transaction() -> None:
            try:
                with transaction.atomic():
                    sharing.revoke(share_link)
                    assert commit.wait(timeout=5)
            finally:
                connections.close_all()

        # Another thread, as another request would be: the socket's own checks read the
        # database meanwhile and see the link still valid until the revocation commits.
        revoking = asyncio.ensure_future(
            sync_to_async(revoke_in_a_slow_transaction, thread_sensitive=False)()
        )
        assert await viewer.receive_nothing(timeout=0.3)
        commit.set()
        await revoking
        assert await closed_with(viewer) == 4403

    async def test_revoking_closes_a_signed_in_viewers_socket_unless_another_link_lets_them_in(
        self, owner, meeting, share_link, make_user
    ) -> None:
        vera = await sync_to_async(make_user)("vera")
        second_link = await sync_to_async(sharing.create_link)(meeting, owner)
        await sync_to_async(opened_share_page)(vera, share_link)
        await sync_to_async(opened_share_page)(vera, second_link)
        communicator = await opened(await socket(meeting.pk, user=vera))

        await sync_to_async(sharing.revoke)(share_link)
        assert await communicator.receive_nothing(timeout=0.3)  # the second link still counts
        await communicator.send_json_to({"type": "ping"})
        assert "live-heartbeat" in await communicator.receive_from(timeout=5)

        await sync_to_async(sharing.revoke)(second_link)
        assert await closed_with(communicator) == 4403

    async def test_a_link_that_expires_while_open_closes_its_socket(
        self, owner, meeting, settings
    ) -> None:
        settings.LIVE_SOCKET_IDLE_SECONDS = 2  # the watchdog looks every half second
        expires = timezone.now() + timedelta(seconds=1)
        link = await sync_to_async(sharing.create_link)(meeting, owner, expires_at=expires)
        communicator = await opened(await socket(meeting.pk, share=link.token))
        await communicator.send_json_to({"type": "ping"})
        await communicator.receive_from(timeout=5)
        assert await closed_with(communicator) == 4403


class TestResume:
    async def test_resume_replays_exactly_the_missed_changes_in_order_then_a_marker(
        self, owner, meeting, mic, system_audio, screen
    ) -> None:
        seen = await sync_to_async(say)(mic, "Already on the page", 1000, final=True)
        missed_interim = await sync_to_async(say)(system_audio, "We could", 2000)
        missed_final = await sync_to_async(say)(system_audio, "We could ship it", 2000, final=True)
        slide = await sync_to_async(note)(screen, "Pricing slide", 2500, kind="visual")
        alert = await sync_to_async(fire)(mic, "pricing", 3000)
        assert missed_interim.pk == missed_final.pk  # updated in place

        communicator = await opened(await socket(meeting.pk, user=owner))
        fragments = await resume(communicator, last_seq=seen.seq)

        assert item_ids(fragments) == [
            f"seg-{missed_final.pk}",
            f"ins-{slide.pk}",
            f"alert-{alert.pk}",
        ]
        replayed = fragments[0]
        assert "We could ship it" in replayed
        assert 'data-seq="3"' in replayed  # the newest change only, not the interim
        assert f'data-through="{alert.seq}"' in fragments[-1]
        # Then the unsequenced state: status and each stream's speaker and health row.
        assert any('id="live-status"' in fragment for fragment in fragments)
        assert any(f'id="health-{screen.pk}"' in fragment for fragment in fragments)
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()

    async def test_a_live_copy_of_a_change_the_replay_covered_is_not_sent_again(
        self, owner, meeting, mic
    ) -> None:
        communicator = await opened(await socket(meeting.pk, user=owner))
        interim = await sync_to_async(say)(mic, "Let's", 1000)
        final = await sync_to_async(say)(mic, "Let's decide", 1000, final=True)
        fragments = await resume(communicator, last_seq=0)
        assert item_ids(fragments) == [f"seg-{final.pk}"]
        # The relay's messages for both changes arrive after the replay: both are covered.
        stale = {"type": "live.update", "seq": interim.seq, "html": "<li>interim</li>"}
        await broadcast.apublish(meeting.pk, [stale])
        assert await communicator.receive_nothing(timeout=0.3)
        newer = await sync_to_async(say)(mic, "Next point", 5000)
        await broadcast.apublish(
            meeting.pk, [await sync_to_async(broadcast.message)(newer, meeting)]
        )
        assert f'id="seg-{newer.pk}"' in await communicator.receive_from(timeout=5)
        await communicator.disconnect()

    async def test_a_resume_from_the_latest_number_replays_nothing(
        self, owner, meeting, mic
    ) -> None:
        segment = await sync_to_async(say)(mic, "Hello", 1000)
        communicator = await opened(await socket(meeting.pk, user=owner))
        fragments = await resume(communicator, last_seq=segment.seq)
        assert item_ids(fragments) == []
        await communicator.disconnect()


class TestMessages:
    async def test_a_ping_gets_a_heartbeat(self, owner, meeting) -> None:
        communicator = await opened(await socket(meeting.pk, user=owner))
        await communicator.send_json_to({"type": "ping"})
        heartbeat = await communicator.receive_from(timeout=5)
        assert 'id="live-heartbeat"' in heartbeat
        assert re.search(r'data-server-ms="\d{13}"', heartbeat)
        await communicator.disconnect()

    @pytest.mark.parametrize(
        "text",
        [
            '{"type": "subscribe", "session": 2}',
            '{"type": "resume", "last_seq": -1}',
            '{"type": "resume", "last_seq": "12"}',
            '{"type": "resume"}',
            "[1, 2]",
            "not json",
        ],
    )
    async def test_an_unknown_or_malformed_message_closes_with_4400(
        self, owner, meeting, text
    ) -> None:
        communicator = await opened(await socket(meeting.pk, user=owner))
        await communicator.send_to(text_data=text)
        assert await closed_with(communicator) == 4400

    async def test_a_binary_message_closes_with_4400(self, owner, meeting) -> None:
        communicator = await opened(await socket(meeting.pk, user=owner))
        await communicator.send_to(bytes_data=b'{"type": "ping"}')
        assert await closed_with(communicator) == 4400

    async def test_an_oversized_message_closes_with_4413(self, owner, meeting) -> None:
        communicator = await opened(await socket(meeting.pk, user=owner))
        padding = "x" * MAX_MESSAGE_BYTES
        await communicator.send_to(text_data=json.dumps({"type": "ping", "pad": padding}))
        assert await closed_with(communicator) == 4413

    async def test_a_silent_browser_is_closed_as_a_dead_peer(
        self, owner, meeting, settings
    ) -> None:
        settings.LIVE_SOCKET_IDLE_SECONDS = 0.4
        communicator = await opened(await socket(meeting.pk, user=owner))
        assert await closed_with(communicator) == 4408

    async def test_a_pinging_browser_is_kept(self, owner, meeting, settings) -> None:
        settings.LIVE_SOCKET_IDLE_SECONDS = 0.6
        communicator = await opened(await socket(meeting.pk, user=owner))
        for _ in range(4):
            await communicator.send_json_to({"type": "ping"})
            assert "live-heartbeat" in await communicator.receive_from(timeout=5)
            await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    async def test_a_speaker_rename_reaches_every_socket(
        self, owner, meeting, mic, share_link
    ) -> None:
        owners = await opened(await socket(meeting.pk, user=owner))
        viewer = await opened(await socket(meeting.pk, share=share_link.token))
        client = Client()
        await sync_to_async(client.force_login)(owner)
        response = await sync_to_async(client.post)(
            f"/sessions/{meeting.pk}/streams/{mic.pk}/speaker/", {"speaker_label": "Priya"}
        )
        assert response.status_code == 302
        for communicator in (owners, viewer):
            fragment = await communicator.receive_from(timeout=5)
            assert f"innerHTML:.speaker[data-stream='{mic.pk}']" in fragment
            assert ">Priya<" in fragment
            await communicator.disconnect()


class TestSigningOut:
    async def test_signing_out_closes_that_users_sockets_and_no_one_elses(
        self, owner, stranger, meeting, make_session, share_link
    ) -> None:
        theirs = await sync_to_async(make_session)(stranger)
        owners_page = await opened(await socket(meeting.pk, user=owner))
        # The owner's browser also watches someone else's meeting through its share link.
        their_link = await sync_to_async(sharing.create_link)(theirs, stranger)
        owners_view_of_theirs = await opened(
            await socket(theirs.pk, user=owner, share=their_link.token)
        )
        strangers_page = await opened(await socket(theirs.pk, user=stranger))
        anonymous_viewer = await opened(await socket(meeting.pk, share=share_link.token))

        owners_browser = await sync_to_async(signed_in)(owner)
        response = await sync_to_async(owners_browser.post)(reverse("logout"))
        assert response.status_code in {200, 302}

        assert await closed_with(owners_page) == 4401
        assert await closed_with(owners_view_of_theirs) == 4401
        assert await strangers_page.receive_nothing(timeout=0.3)
        assert await anonymous_viewer.receive_nothing(timeout=0.1)
        await strangers_page.disconnect()
        await anonymous_viewer.disconnect()


def many_lines(stream, count: int) -> int:
    """``count`` final lines stored at once, numbered as the relay numbers them; returns the
    session's last sequence number."""
    session = stream.session
    first = session.last_seq + 1
    TranscriptSegment.objects.bulk_create(
        TranscriptSegment(
            session=session, stream=stream, seq=first + n, is_final=True,
            start_ms=1000 * (n + 1), end_ms=1000 * (n + 1) + 900,
            text=f"Line {n + 1}: the quarterly numbers, the hiring plan and the launch date",
        )
        for n in range(count)
    )  # fmt: skip
    CaptureSession.objects.filter(pk=session.pk).update(last_seq=first + count - 1)
    return first + count - 1


async def resume_reply(communicator: WebsocketCommunicator, last_seq: int) -> tuple[int, float]:
    """Bytes of the whole reply to one resume, and the server CPU seconds it took (this
    process: the consumer and its database thread)."""
    cpu = time.process_time()
    fragments = await resume(communicator, last_seq)
    return sum(len(f.encode()) for f in fragments), time.process_time() - cpu


class TestBoundedResume:
    async def test_a_long_replay_comes_in_pages_that_together_hold_everything_once(
        self, owner, meeting, mic, monkeypatch
    ) -> None:
        monkeypatch.setattr(broadcast, "REPLAY_PAGE", 5)
        last = await sync_to_async(many_lines)(mic, 12)
        alert = await sync_to_async(fire)(mic, "pricing", 4000)
        communicator = await opened(await socket(meeting.pk, user=owner))
        seen: list[str] = []
        after, pages = 0, 0
        while True:
            fragments = await resume(communicator, after)
            pages += 1
            ids = item_ids(fragments)
            assert len(ids) <= 5
            seen += ids
            marker = fragments[-1]
            after = int(re.search(r'data-through="(\d+)"', marker).group(1))
            if 'data-more="true"' not in marker:
                break
        assert pages == 3
        assert after == alert.seq == last + 1
        assert len(seen) == len(set(seen)) == 13
        assert f"alert-{alert.pk}" in seen

    async def test_one_resume_from_zero_on_a_long_session_costs_a_bounded_reply(
        self, owner, meeting, mic
    ) -> None:
        # The case: 2,100 lines, one anonymous-sized resume from 0 (545 KB before).
        await sync_to_async(many_lines)(mic, 2100)
        communicator = await opened(await socket(meeting.pk, user=owner))
        size, cpu = await resume_reply(communicator, 0)
        print(f"resume from 0 on 2,100 lines: {size} bytes, {cpu * 1000:.0f} ms CPU")
        assert size < 150_000
        await communicator.disconnect()

    async def test_an_ended_sessions_replay_is_rendered_once_and_renames_still_show(
        self, owner, meeting, mic, share_link, monkeypatch
    ) -> None:
        await sync_to_async(many_lines)(mic, 300)
        await sync_to_async(CaptureSession.objects.filter(pk=meeting.pk).update)(
            status=CaptureSession.Status.STOPPED
        )
        renders = []
        real_replay = broadcast.replay_page
        monkeypatch.setattr(
            broadcast, "replay_page", lambda *a, **k: renders.append(1) or real_replay(*a, **k)
        )
        first = await opened(await socket(meeting.pk, share=share_link.token))
        second = await opened(await socket(meeting.pk, share=share_link.token))
        cpu = time.process_time()
        before = await resume(first, 0)
        rendered = time.process_time() - cpu
        cpu = time.process_time()
        assert await resume(second, 0) == before
        kept = time.process_time() - cpu
        print(f"ended session, 300 lines: {rendered * 1000:.0f} ms, then {kept * 1000:.0f} ms")
        assert len(renders) == 1
        await sync_to_async(RTStream.objects.filter(pk=mic.pk).update)(speaker_label="Priya")
        renamed = await resume(second, 0)
        assert len(renders) == 2
        assert any('id="seg-' in fragment and "Priya" in fragment for fragment in renamed)
        await first.disconnect()
        await second.disconnect()

    async def test_resumes_beyond_a_sockets_budget_close_it_with_try_again_later(
        self, owner, meeting, monkeypatch
    ) -> None:
        monkeypatch.setattr(consumers, "RESUMES_PER_SOCKET", 3)
        communicator = await opened(await socket(meeting.pk, user=owner))
        for _ in range(3):
            await resume(communicator, 0)
        await communicator.send_json_to({"type": "resume", "last_seq": 0})
        assert await closed_with(communicator) == 1013

    async def test_asking_for_the_next_page_of_a_replay_is_not_held_against_the_budgets(
        self, meeting, mic, share_link, monkeypatch
    ) -> None:
        # A page away for a long meeting catches up in more pages than the budgets allow
        # resumes (20 a minute, 300 items a page: 6,000 items); it was closed half way.
        monkeypatch.setattr(broadcast, "REPLAY_PAGE", 5)
        monkeypatch.setattr(consumers, "RESUMES_PER_SOCKET", 2)
        monkeypatch.setattr(consumers, "RESUMES_PER_LINK", 2)
        await sync_to_async(many_lines)(mic, 30)
        communicator = await opened(await socket(meeting.pk, share=share_link.token))
        seen: list[str] = []
        after, pages = 0, 0
        while True:
            fragments = await resume(communicator, after)
            pages += 1
            seen += item_ids(fragments)
            marker = fragments[-1]
            after = int(re.search(r'data-through="(\d+)"', marker).group(1))
            if 'data-more="true"' not in marker:
                break
        assert pages == 6
        assert len(seen) == len(set(seen)) == 30
        # A page already sent is not a continuation: asking again counts, and the budget holds.
        await resume(communicator, 0)  # its next page would start at 5
        await communicator.send_json_to({"type": "resume", "last_seq": 3})
        assert await closed_with(communicator) == 1013

    async def test_resumes_beyond_a_share_links_budget_close_with_try_again_later(
        self, meeting, share_link, monkeypatch
    ) -> None:
        monkeypatch.setattr(consumers, "RESUMES_PER_LINK", 4)
        sockets = [await opened(await socket(meeting.pk, share=share_link.token)) for _ in "ab"]
        for communicator in sockets:  # each well within its own budget
            await resume(communicator, 0)
            await resume(communicator, 0)
        await sockets[0].send_json_to({"type": "resume", "last_seq": 0})
        assert await closed_with(sockets[0]) == 1013
        await sockets[1].disconnect()


# --- Redis outages (the PostgreSQL + Redis pass) ---------------------------------------------


@pytest.fixture
def private_redis(settings, tmp_path: Path):
    """The channel layer on a private Redis (same options as the settings' own)."""
    # Every write on disk at once: a restart keeps the groups, as a Redis with persistence
    # does, so what a test sees is the retry and not a lost membership.
    durable = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    redis = RedisServer(durable)
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"][0]["address"] = redis.url
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends.clear()
    yield redis
    redis.stop()
    channel_layers.backends.clear()


@pytest.mark.services
class TestRedisOutage:
    async def test_a_handshake_while_redis_is_down_closes_with_try_again_later(
        self, meeting, private_redis
    ) -> None:
        await sync_to_async(private_redis.stop)()
        communicator = await socket(meeting.pk, share="a-link-token")
        connected, _ = await communicator.connect(timeout=10)
        assert connected  # accepted only to say why: a refused handshake would read as 403
        assert await closed_with(communicator) == 1013
        await communicator.wait(timeout=5)  # the consumer ended cleanly, without a traceback

    def test_a_publish_that_fails_while_redis_restarts_is_retried_and_arrives(
        self, meeting, mic, private_redis
    ) -> None:
        layer = channel_layers["default"]
        group = broadcast.group_name(meeting.pk)
        viewer = "live-test.viewer"  # a plain channel name: any event loop may receive on it
        async_to_sync(layer.group_add)(group, viewer)
        segment = say(mic, "Said while Redis was restarting", 1000, final=True)
        private_redis.stop()
        publishing = threading.Thread(
            target=broadcast.publish, args=(meeting, [broadcast.message(segment, meeting)])
        )
        publishing.start()
        time.sleep(0.3)  # the first attempt has failed by now
        private_redis.start()
        publishing.join(timeout=10)

        async def next_message() -> dict:
            return await asyncio.wait_for(layer.receive(viewer), timeout=5)

        message = async_to_sync(next_message)()
        assert message["seq"] == segment.seq
        assert "Said while Redis was restarting" in message["html"]

    async def test_the_health_check_answers_ok_at_once_while_this_processs_inbox_is_full(
        self, private_redis
    ) -> None:
        # Thousands of viewers' fan-out fill the one inbox their process shares; the health
        # check must not queue behind it (nor fail on ChannelFull).
        layer = channel_layers["default"]
        consumer = await layer.new_channel()
        for n in range(layer.capacity):
            await layer.send(consumer, {"type": "live.update", "seq": n, "html": "<li></li>"})
        health.forget()
        began = time.monotonic()
        response = await AsyncClient().get("/healthz")
        assert response.status_code == 200, response.json()
        assert time.monotonic() - began < 1.0

    async def test_the_health_check_answers_within_its_bound_when_the_pool_is_taken(
        self, settings
    ) -> None:
        # Every pooled connection held (thousands of sockets reading): a probe says so in
        # seconds, instead of waiting its turn in the pool for as long as a page would.
        size = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
        release = threading.Event()
        gave_up: list[Exception] = []

        def hold_a_connection() -> None:
            try:
                with connections["default"].cursor() as cursor:
                    cursor.execute("SELECT 1")
                    release.wait(timeout=30)
            except Exception as error:  # one more than the pool holds: it waited, gave up
                gave_up.append(error)
            finally:
                connections["default"].close()

        def pool_taken() -> bool:
            stats = connections["default"].pool.get_stats()
            return stats["pool_size"] == stats["pool_max"] and stats["pool_available"] == 0

        holders = [threading.Thread(target=hold_a_connection) for _ in range(size)]
        for holder in holders:
            holder.start()
        try:
            await sync_to_async(wait_until, thread_sensitive=False)(pool_taken, 20, "a full pool")
            health.forget()
            began = time.monotonic()
            response = await AsyncClient().get("/healthz")
            took = time.monotonic() - began
        finally:
            release.set()
            for holder in holders:
                await sync_to_async(holder.join, thread_sensitive=False)(timeout=15)
            # A pool grown to its largest, handed on to later tests in this process, makes
            # them wait on its replacement of dropped connections (test_relay's restart):
            # the next test gets a fresh pool.
            await sync_to_async(connections["default"].close_pool, thread_sensitive=False)()
        assert took < health.CHECK_TIMEOUT + 1.5
        assert response.status_code == 503
        assert response.json()["checks"]["database"].startswith("error")
