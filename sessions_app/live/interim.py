"""The line each stream is still speaking: where the relay leaves it and the live socket
reads it.

Interim transcript text is superseded within a second, so it is never stored in the
database (``ingest`` stores finals only). The relay pushes it to the open pages as it
comes (at most every ``LIVE_INTERIM_SECONDS`` per stream) and leaves the latest one here,
rendered, so that a browser that connects or resumes mid-line is shown it too
(``consumers``). The relay and the sockets run in different processes in production, so
with ``REDIS_URL`` it lives in Redis (one hash per session, a field per stream); on the
embedded default the relay runs inside Daphne's process and process memory is enough.

Each entry expires ``TTL_SECONDS`` after it was written: a stream whose final never came
(its relay died, VideoDB dropped it) does not show its last words for ever. The relay
forgets an entry as soon as its final is stored, and when the stream's lane retires.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from dataclasses import dataclass

from django.conf import settings
from redis import asyncio as aioredis

# Words arrive every few hundred ms while someone speaks; an entry not refreshed for this
# long belongs to a line that will not be finished live.
TTL_SECONDS = 30


def _key(session_id: int) -> str:
    return f"copilot:interim:{session_id}"


@dataclass(frozen=True)
class Entry:
    start_ms: int
    html: str
    until: float  # time.time() after which it is stale


class _Memory:
    """One process (the embedded default): the relay and the sockets share this dict."""

    def __init__(self) -> None:
        # The relay's loop and the sockets' may be different threads (tests run the relay
        # in its own thread): the lock keeps each read and write whole.
        self._lock = threading.Lock()
        self._sessions: dict[int, dict[int, Entry]] = {}

    async def show(self, session_id: int, stream_id: int, entry: Entry) -> None:
        with self._lock:
            self._sessions.setdefault(session_id, {})[stream_id] = entry

    async def forget(self, session_id: int, stream_id: int) -> None:
        with self._lock:
            streams = self._sessions.get(session_id)
            if streams is not None:
                streams.pop(stream_id, None)
                if not streams:
                    del self._sessions[session_id]

    async def entries(self, session_id: int) -> list[Entry]:
        with self._lock:
            return list(self._sessions.get(session_id, {}).values())


class _Redis:
    """Several processes: a hash per session. The hash's own expiry is renewed with every
    write, so a session nobody speaks in any more leaves nothing behind."""

    def __init__(self, url: str) -> None:
        self._url = url
        # redis.asyncio connections belong to the event loop that opened them: one client
        # per loop (the relay's, Daphne's; tests run several).
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = aioredis.Redis.from_url(
                self._url, socket_timeout=5, socket_connect_timeout=5
            )
        return client

    async def show(self, session_id: int, stream_id: int, entry: Entry) -> None:
        value = json.dumps({"start_ms": entry.start_ms, "html": entry.html, "until": entry.until})
        async with self._client().pipeline(transaction=False) as pipe:
            pipe.hset(_key(session_id), str(stream_id), value)
            pipe.expire(_key(session_id), TTL_SECONDS)
            await pipe.execute()

    async def forget(self, session_id: int, stream_id: int) -> None:
        await self._client().hdel(_key(session_id), str(stream_id))

    async def entries(self, session_id: int) -> list[Entry]:
        found = []
        for raw in (await self._client().hgetall(_key(session_id))).values():
            try:
                data = json.loads(raw)
                found.append(Entry(int(data["start_ms"]), str(data["html"]), float(data["until"])))
            except (ValueError, KeyError, TypeError):
                continue  # not ours, or from an older version: nothing to show
        return found


_store: _Memory | _Redis | None = None
_store_for: str | None = None


def _backend() -> _Memory | _Redis:
    """The store for the current settings (tests switch ``REDIS_URL``)."""
    global _store, _store_for
    url = settings.REDIS_URL
    if _store is None or _store_for != url:
        _store = _Redis(url) if url else _Memory()
        _store_for = url
    return _store


async def show(session_id: int, stream_id: int, start_ms: int, html: str) -> None:
    """Make ``html`` (the rendered interim line starting at ``start_ms``) the stream's
    current interim, replacing the one before."""
    await _backend().show(session_id, stream_id, Entry(start_ms, html, time.time() + TTL_SECONDS))


async def forget(session_id: int, stream_id: int) -> None:
    """The stream has no interim line any more: its final came, or the stream stopped."""
    await _backend().forget(session_id, stream_id)


async def current(session_id: int) -> list[str]:
    """The rendered interim lines of the session's streams, oldest line first."""
    now = time.time()
    entries = [entry for entry in await _backend().entries(session_id) if entry.until > now]
    return [entry.html for entry in sorted(entries, key=lambda entry: entry.start_ms)]
