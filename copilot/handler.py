"""Django's ASGI handler with the middleware chain and the view run in one thread hop.

Under ASGI, Django builds its middleware chain in async mode. Its own middleware (sessions,
CSRF, auth, messages, security, CSP...) are "async-capable" only in name: in async mode
``MiddlewareMixin`` runs each ``process_request`` and ``process_response`` through its own
``sync_to_async`` call, a hand-off to the request's thread and back; one sync-only middleware
(WhiteNoise) adds an ``async_to_sync`` round trip of its own; then the sync view is one more.
Measured under bench/webhooks.py that was about 15 thread hand-offs per request and most of
the framework's time per webhook. This handler builds the chain in sync mode, as WSGI does,
and enters it once: the chain and the view run together in the request's thread (the one
``ThreadSensitiveContext`` gives each request, where its database connection lives). Async
views (``/healthz``) still work: Django runs them with ``async_to_sync``, on the server's
event loop.

That thread is reused. Django gives each request a ``ThreadSensitiveContext`` of its own, and
asgiref then starts a fresh thread for it and joins it at the end: after the hand-offs, the
largest cost left per request. asgiref lets the caller own the context's executor and keep it
(``ThreadSensitiveContext(executor=...)``), so a request that finished hands its one-thread
executor to the next. Requests never share one at the same time, and each still has its own
context, so its own database connection (Django keeps them per context, not per thread).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase

# Request threads kept for reuse when idle. More requests at once still get threads of their
# own (this bounds what is kept, not concurrency); past this, a finished one is let go.
IDLE_THREADS_KEPT = 32


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        # Touched only on the event loop's thread: no lock.
        self._idle: list[ThreadPoolExecutor] = []

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = (
            self._idle.pop()
            if self._idle
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        )
        finished = False
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
            finished = True
        finally:
            # Only a request that ran to its end is known to have left the thread idle: one
            # cancelled mid-call may still be running there, so its executor is let go (its
            # thread ends when that call returns) rather than handed to the next request.
            if finished and len(self._idle) < IDLE_THREADS_KEPT:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # thread_sensitive: the request's own thread, as every other sync step of the request
        # (its signals, closing the response) uses, so its connection is never shared.
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
