"""Request bodies are refused at the socket, through a real Daphne: an oversized declared
length at once, a chunked body the moment it passes the limit, a slow body after
``REQUEST_BODY_SECONDS``; a body within the limit still reaches the view."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import start_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

WEBHOOK = "/webhooks/videodb/not-a-secret/"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    url, process = start_server(Path(tmp_path_factory.mktemp("daphne")), REQUEST_BODY_SECONDS="2")
    try:
        yield url, process
    finally:
        process.stop()


def connection(server) -> socket.socket:
    parts = urlsplit(server[0])
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def head(path: str, port_url: str, *lines: str) -> bytes:
    host = urlsplit(port_url).netloc
    return (
        "\r\n".join(
            [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json", *lines]
        )
        + "\r\n\r\n"
    ).encode()


def response(sock: socket.socket) -> bytes:
    """What the server answered, until it closes (or 10 s pass)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def status(data: bytes) -> int:
    assert data, "the server did not answer"
    return int(data.split(b" ", 2)[1])


def test_a_declared_length_over_the_limit_is_refused_at_once(server) -> None:
    with connection(server) as sock:
        began = time.monotonic()
        sock.sendall(head(WEBHOOK, server[0], "Content-Length: 500000000"))
        answer = response(sock)
        elapsed = time.monotonic() - began
    assert status(answer) == 413
    assert b"larger than 65536 bytes" in answer
    assert elapsed < 2  # not after 500 MB that were never sent


def test_a_chunked_body_is_cut_off_at_the_limit(server) -> None:
    chunk = b"x" * 8192
    sent = 0
    with connection(server) as sock:
        sock.sendall(head(WEBHOOK, server[0], "Transfer-Encoding: chunked"))
        try:
            for _ in range(10_000):  # 80 MB if nobody stopped it
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = response(sock)
    assert status(answer) == 413
    assert sent < 10 * 1024 * 1024  # the server hung up long before


def test_a_body_within_the_global_limit_elsewhere_is_not_refused_by_size(server) -> None:
    body = b"x" * (LIMIT * 2)  # over the webhook limit, well under the global one
    with connection(server) as sock:
        sock.sendall(head("/accounts/login/", server[0], f"Content-Length: {len(body)}") + body)
        answer = response(sock)
    assert status(answer) == 403  # CSRF: Django saw the request


def test_a_slow_body_times_out(server) -> None:
    with connection(server) as sock:
        began = time.monotonic()
        sock.sendall(head(WEBHOOK, server[0], "Content-Length: 100") + b"{")
        answer = response(sock)
        elapsed = time.monotonic() - began
    assert status(answer) == 408
    assert 1.5 < elapsed < 8


def test_a_small_webhook_body_reaches_the_view(server) -> None:
    body = b'{"event": "capture_session.active"}'
    with connection(server) as sock:
        sock.sendall(
            head(WEBHOOK, server[0], f"Content-Length: {len(body)}", "Connection: close") + body
        )
        answer = response(sock)
    assert status(answer) == 400  # the view's own answer: not a complete envelope
