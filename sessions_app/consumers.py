"""The browser's live socket for one capture session: ``/ws/sessions/<id>/``.

Who may connect is decided by ``access.live_viewer``, the rule the pages follow: the
session's owner or a signed-in user who opened one of its valid share links (the session
cookie, checked by Channels' auth middleware behind the Origin check in copilot/asgi.py),
or anyone holding a valid share link for that session (``?share=<token>``; read-only, like
the share page). Everyone else is refused *before* the socket is accepted, so nothing is
ever sent to them. A signed-in user's sockets also join their own group, so signing out
closes them all.

The protocol, both ways (text frames only):

browser → server, JSON, at most ``MAX_MESSAGE_BYTES``:
  ``{"type": "resume", "last_seq": N}``  on every (re)connect, and when the page sees a
      gap in sequence numbers that does not fill: N is the highest sequence number up to
      which the page is complete (the page renders ``CaptureSession.last_seq`` at load).
      The server replays what changed after N, at most ``broadcast.REPLAY_PAGE`` items,
      then the current speakers, health rows and status, the line each stream is still
      speaking (interim text, ``live/interim.py``, while the session is live), then a
      ``#live-synced`` marker carrying the last sequence number the replay covers, with
      ``data-more`` when another
      page follows (the browser asks again from there; such a follow-up resume, from
      exactly where the page ended, is not counted against the resume budget). An ended
      session's replies are rendered once and cached (``ENDED_REPLAY_CACHE_SECONDS``).
  ``{"type": "ping"}``  every ~20 s: the server answers with the ``#live-heartbeat``
      fragment (and the server clock, for ages).
server → browser: HTML fragments for htmx's ws extension, each root element with
  ``hx-swap-oob``: items (``seg-``/``ins-``/``alert-<pk>``), speaker names, health rows,
  the status banner, the heartbeat and the synced marker (templates/sessions_app/live.html).

Close codes (``CloseCode``, sent as plain ints: Autobahn, under Daphne, refuses an IntEnum
and the close is lost): 4401 anonymous without a share token, and a user who signed out
while open; 4403 share token unknown, revoked, expired or for another session, and a link
revoked (``live.close``) or expiring while open, unless another still lets the user watch;
4404 no such session, or not one the user may view (as the pages answer 404: existence
never leaks); 1013 (Try Again Later, which the browser retries with backoff) when the channel
layer cannot be reached at connect (Redis down: the socket is accepted and closed at once, so
the handshake is not a 500), or when resumes come faster than ``RESUMES_PER_SOCKET`` or
``RESUMES_PER_LINK`` per ``RESUME_WINDOW_SECONDS``; 4400 a message that is not one of the
two above, not JSON or binary; 4413 a message over ``MAX_MESSAGE_BYTES``; 4408 nothing
heard from the browser for ``LIVE_SOCKET_IDLE_SECONDS`` (a dead peer). Refusals before
accept reach a browser as a failed handshake (HTTP 403); the codes are for tests, logs and
non-browser clients. Codes 44xx are final: the browser does not reconnect after them.

Gaps and duplicates: the consumer joins the groups *before* it reads anything, so nothing
published after the join is missed (a revocation included: it is checked again); what was
published before it comes from the replay. The two overlap, and that is absorbed twice
over: each item carries its ``seq``, a live message whose change the replay already covered
is not forwarded, and the browser never lets an older copy of an element replace a newer
one (static/copilot/live.js).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import deque
from enum import IntEnum
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from copilot import throttle
from sessions_app.live import broadcast, interim
from sessions_app.live.broadcast import LiveUpdate, SessionClosed
from sessions_app.models import CaptureSession
from sessions_app.viewers import access

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4096  # a resume or a ping is < 100 bytes; Daphne's own cap is 64 KiB
# A page resumes on each (re)connect, on a lasting gap (after 2 s) and once per replay page:
# a few a minute. More is a client asking for the same replay over and over.
RESUME_WINDOW_SECONDS = 60
RESUMES_PER_SOCKET = 20
RESUMES_PER_LINK = 120  # every socket of one share link together, in this process
ENDED_REPLAY_CACHE_SECONDS = 300


class CloseCode(IntEnum):
    TRY_AGAIN_LATER = 1013
    BAD_MESSAGE = 4400
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    IDLE = 4408
    NOT_FOUND = 4404
    TOO_LARGE = 4413


REFUSED_WITH = {
    access.Refusal.SIGN_IN: CloseCode.UNAUTHENTICATED,
    access.Refusal.BAD_LINK: CloseCode.FORBIDDEN,
    access.Refusal.NOT_FOUND: CloseCode.NOT_FOUND,
}


def catch_up(
    session_id: int, after_seq: int
) -> tuple[list[LiveUpdate], list[str], int, bool, bool]:
    """What a browser that reflects ``after_seq`` is missing (a page of it), up to where that
    covers, whether it is all, and whether the session is still live (so has interim text).

    ``last_seq`` is read *before* the items: every change numbered up to it has committed
    (the number and its row commit together), so the replay reflects each of those changes
    or a newer one. Later changes may be in the replay too; their live copies still come.
    """
    session = CaptureSession.objects.get(pk=session_id)
    through = session.last_seq
    missed, more = _replay_page(session, after_seq)
    if more is not None:
        through = min(through, more)
    return missed, broadcast.current_state(session), through, more is None, not session.has_ended


def _replay_page(session: CaptureSession, after_seq: int) -> tuple[list[LiveUpdate], int | None]:
    """``broadcast.replay_page``; for an ended session rendered once per page and kept, keyed by
    everything that can still change what it shows (its last seq, its streams' names)."""
    if not session.has_ended:
        return broadcast.replay_page(session, after_seq)
    streams = repr(list(session.streams.order_by("pk").values_list()))
    names = hashlib.sha256(streams.encode()).hexdigest()[:16]
    key = f"live-replay:{session.pk}:{session.last_seq}:{after_seq}:{names}"
    cached = cache.get(key)
    if cached is None:
        cached = broadcast.replay_page(session, after_seq)
        cache.set(key, cached, ENDED_REPLAY_CACHE_SECONDS)
    return cached


class LiveSessionConsumer(AsyncWebsocketConsumer):
    """One browser watching one session. Entry point only: authorize, join, forward."""

    viewer: access.Viewer | None = None
    joined: tuple[str, ...] = ()
    replayed_through = 0
    continues_from: int | None = None  # where the last replay page ended, when more follow
    layer_down = False
    watchdog: asyncio.Task | None = None
    resumes: deque[float]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception:
            if not self.layer_down:
                raise
            # Refused with 1013 already: this channel's receive loop failed on the same
            # outage, which the log has said once (in ``connect``).

    async def connect(self) -> None:
        self.session_id = int(self.scope["url_route"]["kwargs"]["pk"])
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.token = query.get("share", [""])[0]
        user = self.scope.get("user")
        self.joined = (broadcast.group_name(self.session_id),)
        if getattr(user, "is_authenticated", False):
            self.joined += (broadcast.user_group_name(user.pk),)
        self.resumes = deque()
        # Join before anything is read: a message published from now on reaches us, and a
        # revocation sent while we check is handled (checked again) once we are connected.
        try:
            for group in self.joined:
                await self.channel_layer.group_add(group, self.channel_name)
        except Exception:
            # The channel layer (Redis) is out of reach: without it nothing live would come.
            # Refuse as "try again later", not with a 500 and a traceback.
            logger.warning("live socket refused: the channel layer is unreachable", exc_info=True)
            self.joined = ()
            self.layer_down = True
            await self.accept()
            await self.close(code=int(CloseCode.TRY_AGAIN_LATER))
            raise StopConsumer from None
        result = await database_sync_to_async(access.live_viewer)(user, self.session_id, self.token)
        if isinstance(result, access.Refusal):
            await self.leave()
            await self.close(code=int(REFUSED_WITH[result]))
            return
        self.viewer = result
        await self.accept()
        self.idle_seconds = float(settings.LIVE_SOCKET_IDLE_SECONDS)
        self.last_heard = time.monotonic()
        self.watchdog = asyncio.create_task(self.watch())

    async def disconnect(self, code: int) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        await self.leave()

    async def leave(self) -> None:
        joined, self.joined = self.joined, ()
        for group in joined:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # Redis down: its membership expires on its own (group_expiry)
                logger.warning("could not leave %s", group, exc_info=True)

    async def still_allowed(self) -> bool:
        """Ask access again (a link this socket watches through was revoked or expired);
        another valid link may still let a signed-in user watch."""
        result = await database_sync_to_async(access.live_viewer)(
            self.scope.get("user"), self.session_id, self.token
        )
        if isinstance(result, access.Refusal):
            return False
        self.viewer = result
        return True

    async def watch(self) -> None:
        """Close a socket whose browser went quiet (a dead peer never sends a close), and one
        watching through share links when they expire."""
        try:
            await self._watch()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A task's exception is otherwise never seen: say so, and do not leave a socket
            # open that nothing watches any more.
            logger.exception("the live socket's watchdog failed; closing the socket")
            await self.close(code=int(CloseCode.IDLE))

    async def _watch(self) -> None:
        step = min(5.0, self.idle_seconds / 4)
        while True:
            await asyncio.sleep(step)
            if time.monotonic() - self.last_heard > self.idle_seconds:
                await self.close(code=int(CloseCode.IDLE))
                return
            expires = self.viewer.expires_at if self.viewer else None
            if expires is not None and expires <= timezone.now() and not await self.still_allowed():
                await self.close(code=int(CloseCode.FORBIDDEN))
                return

    # --- from the browser ---------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.last_heard = time.monotonic()
        if text_data is None:
            await self.close(code=int(CloseCode.BAD_MESSAGE))
            return
        if len(text_data) > MAX_MESSAGE_BYTES or len(text_data.encode()) > MAX_MESSAGE_BYTES:
            await self.close(code=int(CloseCode.TOO_LARGE))
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):  # "[[[[…": 4 KiB of brackets nests too deep
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self.send(text_data=broadcast.render_heartbeat(int(time.time() * 1000)))
        elif kind == "resume" and is_seq(message.get("last_seq")):
            if message["last_seq"] == self.continues_from or await self.resume_allowed():
                await self.resume(message["last_seq"])
            else:
                await self.close(code=int(CloseCode.TRY_AGAIN_LATER))
        else:
            await self.close(code=int(CloseCode.BAD_MESSAGE))

    async def resume_allowed(self) -> bool:
        """Within this socket's and its share link's resume budgets (each resume is a
        database read and a render: without a bound, a loop of 33-byte frames costs CPU)."""
        now = time.monotonic()
        while self.resumes and now - self.resumes[0] > RESUME_WINDOW_SECONDS:
            self.resumes.popleft()
        if len(self.resumes) >= RESUMES_PER_SOCKET:
            return False
        self.resumes.append(now)
        if not self.token:
            return True
        name = f"live-resume:{self.token}"
        return not await sync_to_async(throttle.use)(name, RESUMES_PER_LINK, RESUME_WINDOW_SECONDS)

    async def resume(self, after_seq: int) -> None:
        updates, state, through, complete, live = await database_sync_to_async(catch_up)(
            self.session_id, after_seq
        )
        # One frame per fragment: htmx's ws extension fires an event per element already
        # swapped from the same frame for every element it swaps, so a frame of k items
        # costs k² events (htmx 2.0, oobSwap), where k frames cost k.
        for update in updates:
            await self.send(text_data=update["html"])
        for fragment in state:
            await self.send(text_data=fragment)
        if live:
            # After the replay: a final it holds removes an interim of its line (live.js).
            for fragment in await self.current_interims():
                await self.send(text_data=fragment)
        self.replayed_through = max(self.replayed_through, through)
        # Only the page just sent can be continued, once: a follow-up moves forward through
        # what is stored, so it is bounded by the session, not by how often it is asked.
        self.continues_from = None if complete else through
        await self.send(text_data=broadcast.render_synced(through, complete=complete))

    async def current_interims(self) -> list[str]:
        try:
            return await interim.current(self.session_id)
        except Exception:  # Redis away: the next interim push shows the line anyway
            logger.warning("could not read the interim lines of %s", self.session_id,
                           exc_info=True)  # fmt: skip
            return []

    # --- from the channel layer ---------------------------------------------------------

    async def live_update(self, event: LiveUpdate) -> None:
        """Forward a published update as it is: the fragment was rendered once by the
        publisher and is this socket's text frame, unchanged (nothing per viewer but the
        seq check)."""
        if self.viewer is None:
            return  # refused: queued while it was being checked
        seq = event["seq"]
        if seq != broadcast.UNSEQUENCED and seq <= self.replayed_through:
            return  # the replay sent this change, or a newer one of the same item
        await self.send(text_data=event["html"])

    async def live_close(self, event: SessionClosed) -> None:
        """Close for a revoked link this socket watches through (unless access still allows
        it), or for every socket of the group (the user signed out)."""
        if self.viewer is None:
            return
        link_id = event.get("share_link_id")
        if link_id is not None and (
            link_id not in self.viewer.link_ids or await self.still_allowed()
        ):
            return
        await self.close(code=int(event.get("code", CloseCode.FORBIDDEN)))


class NoSuchRouteConsumer(AsyncWebsocketConsumer):
    """Any other socket path (``/ws/sessions/abc/``): refused like an unknown session,
    instead of the router's exception and a traceback."""

    async def connect(self) -> None:
        await self.close(code=int(CloseCode.NOT_FOUND))


def is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
