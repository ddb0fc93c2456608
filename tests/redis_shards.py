"""Redis servers of a test's own, on free ports, for a channel layer sharded over them (never
the machine's shared Redis, whose databases other tests and helpers use)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence

import redis

from tests.conftest import free_port, wait_for_port


class RedisServer:
    """A throwaway redis-server on a free port, killed when the test is done; it may be
    stopped and started again on the same port. No persistence unless ``options`` ask."""

    def __init__(self, options: Sequence[str] = ("--appendonly", "no")) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.options = list(options)
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def keys(self, pattern: str) -> set[str]:
        client = redis.Redis.from_url(self.url)
        try:
            return {key.decode() for key in client.scan_iter(pattern)}
        finally:
            client.close()


@contextlib.contextmanager
def redis_servers(count: int) -> Iterator[list[RedisServer]]:
    servers: list[RedisServer] = []
    try:
        for _ in range(count):
            servers.append(RedisServer())
        yield servers
    finally:
        for server in servers:
            server.stop()
