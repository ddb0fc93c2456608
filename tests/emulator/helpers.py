"""Helpers shared by the emulator tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from videodb_emulator.testing import RunningEmulator

TINY_SCRIPT = Path(__file__).with_name("tiny_meeting.toml")


async def collect(
    ws: Any, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Read events through the SDK's ``ws.receive()`` until ``until(events)`` holds."""
    events: list[dict[str, Any]] = []

    async def read() -> None:
        async for event in ws.receive():
            events.append(event)
            if until(events):
                return

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise AssertionError(
            f"timed out; got {len(events)} events: {[e.get('channel') for e in events]}"
        ) from None
    return events


def streams_by_category(conn: Any, session_id: str) -> dict[str, Any]:
    """The session's RTStreams as SDK objects, keyed by `channel_id` category."""
    cap = conn.get_capture_session(session_id)
    coll = conn.get_collection()
    return {r.channel_id: coll.get_rtstream(r.id) for r in cap.rtstreams}


def start_active_meeting(
    emu: RunningEmulator, conn: Any, speed: float = 1.0, **session_kwargs: Any
) -> Any:
    """Create a session, play the tiny meeting at ``speed`` and wait until active."""
    cap = conn.create_capture_session(end_user_id="user-1", **session_kwargs)
    emu.control.simulate(cap.id, TINY_SCRIPT, speed=speed)
    emu.control.wait_for_status(cap.id, "active")
    return cap


class Listener:
    """Reads a WebSocketConnection in the background into ``events``."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for event in self.ws.receive():
            self.events.append(event)

    async def stop(self) -> list[dict[str, Any]]:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        await self.ws.close()
        return self.events
