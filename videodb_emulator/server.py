"""aiohttp application and the embeddable EmulatorServer."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from aiohttp import web

from . import api_capture, api_generate, api_rtstream, api_video, control, media, unserved
from .auth import CORE, control_key_ok, resolve_principal
from .config import EmulatorConfig, make_config
from .core import Emulator
from .errors import ApiError, error_response

log = logging.getLogger(__name__)

# Faults target REST calls; the control API, media, presigned uploads and the WebSocket
# upgrade stay usable.
_UNFAULTED_PREFIXES = ("/_emulator", "/_media", "/_upload", "/ws")
# Media and presigned upload URLs are their own credential; the socket carries a ticket.
_KEYLESS_PREFIXES = ("/_media/", "/_upload/")


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status in (404, 405):
            # An SDK call the emulator leaves out on purpose says so, whatever the router found.
            reason = unserved.explain(request.method, request.path)
            if reason is not None:
                return error_response(404, reason)
        if exc.status == 405:
            allowed = sorted(getattr(exc, "allowed_methods", ()))
            response = error_response(
                405,
                f"method {request.method} is not allowed on {request.path} "
                f"(allowed: {', '.join(allowed)})",
            )
            response.headers["Allow"] = ", ".join(allowed)
            return response
        if exc.status == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        else:
            message = exc.reason or "request failed"
        return error_response(exc.status, message)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal emulator error")


@web.middleware
async def key_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """A request without a valid key (or client token) is a 401 before routing, so an
    unknown path tells nothing to a caller without one."""
    path = request.path
    if path != "/ws" and not path.startswith(_KEYLESS_PREFIXES):
        core: Emulator = request.app[CORE]  # type: ignore[assignment]
        if path == "/_emulator" or path.startswith("/_emulator/"):
            if not control_key_ok(core, request):
                raise ApiError(401, "control API needs an API key (x-access-token or Bearer)")
        else:
            resolve_principal(core, request.headers.get("x-access-token"))
    return await handler(request)


@web.middleware
async def count_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Tally REST calls by method and concrete path, so tests can assert "called once"."""
    if not request.path.startswith(_UNFAULTED_PREFIXES):
        core: Emulator = request.app[CORE]  # type: ignore[assignment]
        core.request_counts[f"{request.method} {request.path.strip('/')}"] += 1
    return await handler(request)


@web.middleware
async def fault_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith(_UNFAULTED_PREFIXES):
        return await handler(request)
    core: Emulator = request.app[CORE]  # type: ignore[assignment]
    status, delay = core.faults.take()
    if delay:
        await asyncio.sleep(delay)
    if status is not None:
        return error_response(status, f"injected fault: HTTP {status}")
    return await handler(request)


def build_app(core: Emulator) -> web.Application:
    app = web.Application(
        middlewares=[count_middleware, error_middleware, key_middleware, fault_middleware],
        client_max_size=4 << 20,
    )
    app[CORE] = core
    app.router.add_get("/ws", api_capture.websocket_endpoint)
    control.routes.install(app)
    api_capture.routes.install(app)
    api_rtstream.routes.install(app)
    api_video.routes.install(app)
    api_generate.install(app)
    media.install(app)
    return app


class EmulatorServer:
    """One emulator instance: ``await start()`` in a loop, or ``start_in_thread()``."""

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        self.config = config if config is not None else make_config(**overrides)
        self.core: Emulator | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self.base_url: str | None = None

    @property
    def api_key(self) -> str:
        return self.config.api_keys[0]

    async def start(self) -> str:
        """Bind and serve on the running loop; returns the base URL."""
        self.core = Emulator(self.config)
        self._runner = web.AppRunner(build_app(self.core), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        server = site._server
        port = server.sockets[0].getsockname()[1] if server and server.sockets else self.config.port
        host = self.config.host
        display_host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        self.base_url = self.config.public_base_url or f"http://{display_host}:{port}"
        self.core.base_url = self.base_url
        self.core.local_url = f"http://{display_host}:{port}"
        log.info("VideoDB emulator listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self.core is not None:
            await self.core.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # -- thread mode -----------------------------------------------------------

    def start_in_thread(self, timeout: float = 10.0) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            self._stopped = asyncio.Event()
            ready.set()
            try:
                loop.run_until_complete(self._stopped.wait())
                loop.run_until_complete(self.stop())
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="videodb-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("emulator did not start in time")
        if failure:
            raise failure[0]
        if self.base_url is None:
            raise RuntimeError("emulator started without a base URL")
        return self.base_url

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
        self._thread = None
        self._loop = None

    def call(self, fn: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(core)`` on the emulator's loop (thread mode) and return its result."""
        if self._loop is None or self.core is None:
            raise RuntimeError("emulator is not running in a thread")

        async def invoke() -> Any:
            return fn(self.core)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout)
