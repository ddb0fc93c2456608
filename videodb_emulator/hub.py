"""WebSocket hub: one connection id per socket, best-effort fan-out of events."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .state import iso_now, new_id

log = logging.getLogger(__name__)


def owner_of(principal: str, credential: str) -> str:
    """Who opened a socket: one API key or one client token, never stored in clear."""
    return f"{principal}:{hashlib.sha256(credential.encode()).hexdigest()[:16]}"


@dataclass
class WsConnection:
    id: str
    ws: web.WebSocketResponse
    principal: str
    queue: asyncio.Queue[str | None]
    owner: str = ""
    transport: Any = None
    opened_at: str = field(default_factory=iso_now)
    sent: int = 0
    closed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "connection_id": self.id,
            "principal": self.principal,
            "owner": self.owner,
            "opened_at": self.opened_at,
            "sent": self.sent,
            "queued": self.queue.qsize(),
        }


class Hub:
    def __init__(self, queue_limit: int) -> None:
        self.queue_limit = queue_limit
        self.connections: dict[str, WsConnection] = {}
        # Events addressed to a connection that is gone or never existed; the
        # real service drops them too, clients backfill through the REST API.
        self.lost = 0
        self.delivered = 0
        # Owner of every connection ever opened, closed ones included, so that an event
        # addressed to a dead connection can find its owner's live one (see route()).
        self.owners: dict[str, str] = {}

    def publish(self, connection_id: str | None, message: dict[str, Any]) -> bool:
        if not connection_id:
            return False
        conn = self.connections.get(connection_id)
        if conn is None or conn.closed:
            self.lost += 1
            return False
        if conn.queue.qsize() >= self.queue_limit:
            # A reader this far behind would only grow memory; cut it loose like
            # a real gateway would and let it reconnect and backfill.
            log.warning(
                "websocket %s is %d events behind; disconnecting", conn.id, self.queue_limit
            )
            self.lost += 1
            self._close_soon(conn, abort=True)
            return False
        conn.queue.put_nowait(json.dumps(message, separators=(",", ":")))
        return True

    def route(self, connection_id: str) -> str:
        """Where an event registered for ``connection_id`` goes: that connection while it is
        open; once it has closed, the newest open connection of the same owner (the client
        that reconnected); otherwise ``connection_id`` itself, where publish() loses it."""
        conn = self.connections.get(connection_id)
        if conn is not None and not conn.closed:
            return connection_id
        owner = self.owners.get(connection_id)
        if owner:
            for other in reversed(self.connections.values()):
                if other.owner == owner and not other.closed:
                    return other.id
        return connection_id

    async def handle(
        self, request: web.Request, principal: str, owner: str = ""
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = WsConnection(
            id=new_id("ws"),
            ws=ws,
            principal=principal,
            queue=asyncio.Queue(),
            transport=request.transport,
            owner=owner,
        )
        self.connections[conn.id] = conn
        if owner:
            self.owners[conn.id] = owner
        await ws.send_str(
            json.dumps({"type": "connected", "status": "connected", "connection_id": conn.id})
        )
        writer = asyncio.get_running_loop().create_task(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data.strip().lower() in ('"ping"', "ping"):
                    await ws.send_str(json.dumps({"type": "pong", "ts": int(time.time() * 1000)}))
        finally:
            conn.closed = True
            self.connections.pop(conn.id, None)
            conn.queue.put_nowait(None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _writer(self, conn: WsConnection) -> None:
        queue = conn.queue
        ws = conn.ws
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                await ws.send_str(item)
                conn.sent += 1
                self.delivered += 1
        except (ConnectionError, RuntimeError):
            conn.closed = True

    def _close_soon(self, conn: WsConnection, *, abort: bool) -> None:
        conn.closed = True
        asyncio.get_running_loop().create_task(self._close(conn, abort=abort))

    async def _close(self, conn: WsConnection, *, abort: bool) -> None:
        self.connections.pop(conn.id, None)
        if abort and conn.transport is not None:
            conn.transport.abort()
            return
        with contextlib.suppress(Exception):
            await conn.ws.close(code=1001, message=b"dropped by emulator")

    async def drop(self, connection_id: str, *, abort: bool = False) -> bool:
        conn = self.connections.get(connection_id)
        if conn is None:
            return False
        conn.closed = True
        await self._close(conn, abort=abort)
        return True

    async def drop_all(self, *, abort: bool = False) -> list[str]:
        ids = list(self.connections)
        for cid in ids:
            await self.drop(cid, abort=abort)
        return ids

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections": [c.to_dict() for c in self.connections.values()],
            "events_sent": self.delivered,
            "events_lost": self.lost,
        }
