"""A seat in a session's channel-layer group, where the browsers' sockets sit: what was
published to the session's open pages, read from sync test code (``with GroupWatch(id)``).

Its own event loop for all its calls: Redis's channel layer keeps a receive buffer per
channel that belongs to the loop that first read it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from channels.layers import get_channel_layer

from sessions_app.live import broadcast


class GroupWatch:
    def __init__(self, session_id: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.layer = get_channel_layer()
        self.group = broadcast.group_name(session_id)
        self.channel = self._run(self.layer.new_channel())
        self._run(self.layer.group_add(self.group, self.channel))

    def _run[T](self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def received(self, wait: float = 0.3) -> list[dict]:
        """Every message published to the group since the last call, in order."""
        messages: list[dict] = []

        async def drain() -> None:
            while True:
                try:
                    messages.append(await asyncio.wait_for(self.layer.receive(self.channel), wait))
                except TimeoutError:
                    return

        self._run(drain())
        return messages

    def html(self, wait: float = 0.3) -> str:
        return "\n".join(message["html"] for message in self.received(wait))

    def __enter__(self) -> GroupWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._run(self.layer.group_discard(self.group, self.channel))
        self.loop.close()  # Redis's layer closes this loop's connections with it
