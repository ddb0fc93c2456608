"""Helpers for other test suites: ``with running_emulator() as emu: ...``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .config import make_config
from .control_client import ControlClient
from .server import EmulatorServer


@dataclass
class RunningEmulator:
    base_url: str
    api_key: str
    control: ControlClient
    server: EmulatorServer

    def connect(self, api_key: str | None = None) -> Any:
        """A ``videodb`` Connection pointed at this emulator."""
        import videodb

        return videodb.connect(api_key=api_key or self.api_key, base_url=self.base_url)


@contextlib.contextmanager
def running_emulator(**config: Any) -> Iterator[RunningEmulator]:
    """Run an emulator on an ephemeral port in a background thread.

    Keyword arguments are EmulatorConfig fields, plus flat webhook settings
    (``webhook_backoff_base=0.01``, ``duplicate_rate=0.5``, ``seed=1``, ...). Unlike a
    served emulator, a session a desktop client starts plays nothing unless the test asks
    (``default_script=...`` here, or ``control.simulate``).
    """
    config.setdefault("port", 0)
    config.setdefault("default_script", None)
    config.setdefault("host", "127.0.0.1")
    server = EmulatorServer(make_config(**config))
    base_url = server.start_in_thread()
    try:
        yield RunningEmulator(
            base_url=base_url,
            api_key=server.api_key,
            control=ControlClient(base_url, server.api_key),
            server=server,
        )
    finally:
        server.stop_thread()
