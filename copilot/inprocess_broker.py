"""The embedded default's broker: kombu's in-memory transport, stoppable at once.

Celery's blocking consumer loop (the one a transport without an event loop gets) asks the
transport for a message with a 2-second timeout and looks at whether the worker is stopping
only between two asks. kombu's memory transport then polls until that timeout is over, even
after the connection it serves has been closed, so stopping the in-process worker (the end
of ``./dev up``, of every server and test that runs it) always waited out up to 2 s. This
transport asks in slices of one polling interval and gives up as soon as its connection is
closed. Messages are held exactly as kombu's memory transport holds them (its Channel).

Named ``inprocess://`` in CELERY_BROKER_URL; copilot/celery.py registers the name.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from kombu.transport import memory

ALIAS = "inprocess"


class Transport(memory.Transport):
    closed = False

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:
        deadline = None if timeout is None else monotonic() + timeout
        step = self.polling_interval or 0.05
        while True:
            if self.closed:
                raise TimeoutError()  # socket.timeout: what a drain that found nothing raises
            left = step if deadline is None else min(step, deadline - monotonic())
            if left <= 0:
                raise TimeoutError()
            try:
                return super().drain_events(connection, timeout=left)
            except TimeoutError:
                continue

    def close_connection(self, connection: Any) -> None:
        self.closed = True
        super().close_connection(connection)
