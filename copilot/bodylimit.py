"""Request bodies bounded at the socket, before anything buffers them.

Daphne (through Twisted) reads a request's whole body into a buffer or a temporary file
before the ASGI application sees a byte of it, so no Django middleware or view can stop a
500 MB POST: by the time one runs, the body is in. These classes sit in Twisted's request
instead:

- a ``Content-Length`` above the path's limit is answered 413 as soon as the headers end,
  and the connection is closed without reading the body;
- a body without a length (chunked) is counted as it arrives and refused the same way the
  moment it passes the limit;
- a body that has not fully arrived ``REQUEST_BODY_SECONDS`` after its headers is answered
  408 (a slow sender holds a connection and a buffer for no purpose).

The limits: ``WEBHOOK_MAX_BODY_BYTES`` under ``/webhooks/`` (what VideoDB sends is a few
KiB), ``REQUEST_MAX_BODY_BYTES`` everywhere else (forms only).
"""

from __future__ import annotations

import json

from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from django.conf import settings
from twisted.internet import reactor

WEBHOOK_PREFIX = b"/webhooks/"
REASONS = {408: b"Request Timeout", 413: b"Content Too Large"}


def limit_for(path: bytes) -> int:
    """The largest body accepted for a request to ``path``, in bytes."""
    if path.startswith(WEBHOOK_PREFIX):
        return settings.WEBHOOK_MAX_BODY_BYTES
    return settings.REQUEST_MAX_BODY_BYTES


def refusal(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} ".encode()
        + REASONS[status]
        + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    return head + body


class BoundedRequest(WebRequest):
    """Daphne's request, refusing an oversized or slow body before buffering it."""

    refused = False
    received = 0
    limit = 0
    deadline = None

    def gotLength(self, length: int | None) -> None:
        self.limit = limit_for(getattr(self.channel, "_path", b"") or b"")
        if length is not None and length > self.limit:
            self.refuse(413, f"the body is larger than {self.limit} bytes")
            return
        super().gotLength(length)
        if length != 0:
            self.deadline = reactor.callLater(settings.REQUEST_BODY_SECONDS, self.too_slow)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.limit:
            self.refuse(413, f"the body is larger than {self.limit} bytes")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self.stop_clock()
        if self.refused:
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: object) -> None:
        self.stop_clock()
        super().connectionLost(reason)  # Daphne forgets the connection here

    def too_slow(self) -> None:
        self.deadline = None
        self.refuse(408, f"the body did not arrive within {settings.REQUEST_BODY_SECONDS:g} s")

    def stop_clock(self) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.deadline = None

    def refuse(self, status: int, message: str) -> None:
        """Answer ``status`` and hang up: the rest of the body is never read."""
        self.refused = True
        self.stop_clock()
        transport = self.channel.transport
        transport.write(refusal(status, message))
        transport.loseConnection()


class BoundedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr: object) -> object:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BoundedRequest
        return protocol


class BoundedServer(Server):
    """Daphne's server with bounded request bodies.

    ``Server.run`` builds its HTTP factory inline; this property hands it ours instead, the
    one seam Daphne leaves short of copying ``run``.
    """

    @property
    def http_factory(self) -> HTTPFactory:
        return self._bounded_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        self._bounded_factory = BoundedHTTPFactory(self)
