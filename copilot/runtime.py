"""Running Copilot's processes.

On the embedded default (no ``REDIS_URL``) one process holds everything: Daphne serves HTTP
and WebSockets while a Celery worker runs in a thread beside it, on Celery's in-memory
broker. With Redis each part runs in its own process (``manage.py serve``, ``celery -A
copilot worker``), and ``serve`` is only the web server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from celery import Celery
from celery.beat import EmbeddedService
from celery.worker import WorkController
from django.conf import settings

from copilot.bodylimit import BoundedServer
from copilot.celery import app as celery_app
from sessions_app.live import broadcast
from sessions_app.relay import Relay

if TYPE_CHECKING:
    from videodb_emulator.server import EmulatorServer

logger = logging.getLogger(__name__)

# Browser sockets only ever send small control messages; refusing anything larger stops a
# client from making Daphne buffer megabytes per connection.
WEBSOCKET_MAX_MESSAGE_BYTES = 64 * 1024
# Connections the kernel queues before Daphne accepts them. Twisted's default is 50: a burst
# of reconnecting viewers (a deploy, a network blip) overflowed it at ~2,750 sockets and new
# connects failed. Linux caps it at net.core.somaxconn (4096 by default since 5.4).
LISTEN_BACKLOG = 4096


def endpoint(host: str, port: int, *, backlog: int = LISTEN_BACKLOG) -> str:
    """Daphne's (Twisted's) endpoint description for the listening socket."""
    interface = host.replace(":", "\\:")  # an IPv6 address: colons separate the fields
    return f"tcp:port={port}:interface={interface}:backlog={backlog}"


class _NotifyingWorkController(WorkController):
    def __init__(self, *args: object, on_ready: Callable[[], None], **kwargs: object) -> None:
        self._on_ready = on_ready
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self._on_ready()


class InProcessWorker:
    """A real Celery worker consuming in a background thread of this process.

    It is the same WorkController ``celery worker`` runs, minus the process-level parts
    (signal handlers, mingle/gossip/heartbeat) that only make sense for a worker of its own.
    It consumes every queue (``TASK_QUEUES``): it is the only worker there is.
    """

    def __init__(self, app: Celery, *, concurrency: int = 4, loglevel: str = "WARNING") -> None:
        self.app = app
        self.concurrency = concurrency
        self.loglevel = loglevel
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._controller: _NotifyingWorkController | None = None

    def start(self, timeout: float = 15.0) -> None:
        self.app.loader.import_default_modules()
        self.app.finalize()
        self._controller = _NotifyingWorkController(
            app=self.app,
            hostname=f"embedded@{os.getpid()}",
            concurrency=self.concurrency,
            pool_cls="threads",
            queues=list(settings.TASK_QUEUES),
            loglevel=self.loglevel,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            on_ready=self._ready.set,
        )
        self._thread = threading.Thread(
            target=self._controller.start, name="celery-embedded-worker", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the in-process Celery worker did not start in {timeout} s")
        logger.info("in-process Celery worker ready (%d threads)", self.concurrency)

    def stop(self, timeout: float = 10.0) -> None:
        if self._controller is None or self._thread is None:
            return
        self._controller.stop(in_sighandler=False)
        self._thread.join(timeout)
        self._controller = None
        self._thread = None


class InProcessBeat:
    """Celery beat (the reconciler's clock) as a thread of this process."""

    def __init__(self, app: Celery, schedule_path: str) -> None:
        self._service = EmbeddedService(app, schedule_filename=schedule_path, thread=True)

    def start(self) -> None:
        self._service.start()
        logger.info("in-process Celery beat started")

    def stop(self) -> None:
        self._service.stop()


def start_local_emulator(base_url: str, *, elsewhere_if_taken: bool = False) -> EmulatorServer:
    """The dev runner's VideoDB: the emulator on VIDEODB_BASE_URL's port, in a thread.

    When that port is taken (another ``./dev up`` holds it) and ``elsewhere_if_taken``, it
    listens on a free port instead; the returned server's ``base_url`` says where. Only a
    process that is the emulator's sole client may move it: Celery workers and relays of
    their own would still call VIDEODB_BASE_URL.
    """
    # Imported here: only the dev runner starts the emulator, and nothing else of Copilot's
    # may load it.
    from videodb_emulator.config import make_config
    from videodb_emulator.server import EmulatorServer

    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    server = EmulatorServer(make_config(host=host, port=parts.port or 80))
    try:
        server.start_in_thread()
    except OSError as error:
        if error.errno != errno.EADDRINUSE or not elsewhere_if_taken:
            raise
        server = EmulatorServer(make_config(host=host, port=0))  # 0: the system picks one
        server.start_in_thread()
    logger.info("local VideoDB emulator on %s", server.base_url)
    return server


def web_server(
    application: Callable[..., Awaitable[None]],
    host: str,
    port: int,
    *,
    ready_callable: Callable[[], None] | None = None,
) -> BoundedServer:
    """The Daphne server of every Copilot web process, not yet running. bench/webhooks.py
    serves its bare baseline with this too, so the two differ only in the application."""
    return BoundedServer(
        application=application,
        ready_callable=ready_callable,
        endpoints=[endpoint(host, port)],
        websocket_max_message_size=WEBSOCKET_MAX_MESSAGE_BYTES,
        websocket_max_frame_size=WEBSOCKET_MAX_MESSAGE_BYTES,
        application_close_timeout=10,
        verbosity=1,
        # Behind a load balancer: the client's address, from the header it sets (settings).
        proxy_forwarded_address_header=settings.FORWARDED_ADDRESS_HEADER or None,
    )


def serve(host: str, port: int, *, embedded: bool, emulator: EmulatorServer | None = None) -> None:
    """Serve the ASGI application with Daphne until SIGINT/SIGTERM (then stop ``emulator``,
    the local VideoDB started for this process, if any)."""
    # Imported here because importing it acts: it sets Django up again and builds the ASGI
    # application, which only a serving process needs.
    from copilot.asgi import application

    worker = InProcessWorker(celery_app) if embedded else None
    beat = (
        InProcessBeat(celery_app, str(settings.VAR_DIR / "celerybeat-schedule"))
        if embedded
        else None
    )
    if worker is not None:
        worker.start()
    if beat is not None:
        beat.start()

    def start_relay() -> None:
        # Inside Daphne's own event loop: the in-memory channel layer only works within
        # one loop, and the relay must reach the consumers through it; so must the worker's
        # threads, which publish status changes.
        broadcast.use_event_loop(asyncio.get_event_loop())
        asyncio.get_event_loop().create_task(Relay(0).run(asyncio.Event()))
        logger.info("in-process relay scheduled")

    try:
        web_server(application, host, port, ready_callable=start_relay if embedded else None).run()
    finally:
        if beat is not None:
            beat.stop()
        if worker is not None:
            worker.stop()
        if emulator is not None:
            emulator.stop_thread()
