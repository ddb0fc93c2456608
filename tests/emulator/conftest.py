"""Fixtures for the VideoDB emulator tests: an emulator, a webhook receiver, SDK helpers.

Nothing here touches Django; the only network peers are the ones started here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import videodb

from videodb_emulator.testing import RunningEmulator, running_emulator

FAST_WEBHOOKS = {
    "webhook_backoff_base": 0.02,
    "webhook_backoff_max": 0.2,
    "webhook_timeout": 5.0,
    "webhook_max_attempts": 5,
    "activation_delay": 0.02,
    "stop_delay": 0.02,
}


@pytest.fixture
def emulator_config() -> dict[str, Any]:
    """Override in a test module to change the emulator's config."""
    return {}


@pytest.fixture
def emu(emulator_config: dict[str, Any]) -> Iterator[RunningEmulator]:
    with running_emulator(**{**FAST_WEBHOOKS, **emulator_config}) as running:
        yield running


@pytest.fixture
def conn(emu: RunningEmulator) -> Any:
    return videodb.connect(api_key=emu.api_key, base_url=emu.base_url)


@dataclass
class Receiver:
    """A local HTTP server standing in for a webhook/alert endpoint."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Status codes to answer with, in order, before falling back to 200.
    script: list[int] = field(default_factory=list)
    delay: float = 0.0
    on_request: Callable[[dict[str, Any]], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r["body"] for r in self.requests if path is None or r["path"] == path]

    def accepted(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r["body"]
                for r in self.requests
                if r["status"] == 200 and (path is None or r["path"] == path)
            ]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.02)
        raise AssertionError(f"receiver condition not met; got {self.requests!r}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"null")
            with rec.lock:
                status = rec.script.pop(0) if rec.script else 200
            entry = {"path": self.path, "body": body, "status": status, "at": time.time()}
            if rec.on_request is not None:
                rec.on_request(entry)
            if rec.delay:
                time.sleep(rec.delay)
            with rec.lock:
                rec.requests.append(entry)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"nope")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
