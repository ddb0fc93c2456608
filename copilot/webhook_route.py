"""VideoDB's webhooks served straight from the ASGI server, past Django's request handler.

A webhook is a machine calling: no session, no sign-in, no CSRF token (the views are
``csrf_exempt``), no messages, no page to protect with a CSP. Under Django's ASGI handler it
still paid for all of that, and more for the handler itself: a request thread entered three
times (``request_started``, the middleware chain and view, closing the response), each entry
a thread wake-up and a wake-up of the event loop back, plus the request bookkeeping around
them. Profiled under bench/webhooks.py that was several times the work of the view itself.

This route takes the requests Django's URLconf resolves to a webhook view (``VIEWS``), and
runs them the way Django would, minus what serves browsers only:

- the URL is resolved by the URLconf (sessions_app/urls.py stays the one place that names
  these URLs); any other request goes on to Django untouched;
- the body is read here, up to one byte past WEBHOOK_MAX_BODY_BYTES, so the view answers 413
  without anything larger being buffered (under Daphne, copilot/bodylimit.py has refused a
  larger body before this runs);
- then, in one hand-off to a worker thread: ``request_started``; the middleware that serves
  a machine too (``MIDDLEWARE``: SSL redirect, security headers, the ``ALLOWED_HOSTS``
  check and Content-Length, exactly as Django's own chain runs them, in the same order);
  the view; Django's answer to any exception (logged to ``django.request``, then 500, so the
  sender retries); the 4xx/5xx log line; and closing the response, whose
  ``request_finished`` hands the thread's database connection back, as after any request.

The worker threads are this route's own, so a burst of webhooks never waits behind (or
holds up) the threads of the pages.

A lifecycle call that copies a delivery this process has seen stored, under the same secret
(sessions_app/capture/repeats.py), is answered on the event loop: the same middleware, then
the view's "duplicate" answer, with no worker thread, no database connection and so no
``request_started``/``request_finished`` (they exist to hand a connection back). At-least-once
delivery makes such copies most of the traffic.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseBase
from django.urls import Resolver404, ResolverMatch, resolve
from django.utils.log import log_response
from django.utils.module_loading import import_string

from sessions_app import webhooks

logger = logging.getLogger("django.request")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX = "/webhooks/"
# The views served here: VideoDB's lifecycle webhooks and alert callbacks.
VIEWS = frozenset({webhooks.lifecycle_webhook, webhooks.alert_callback})
# The part of settings.MIDDLEWARE that serves a machine's request, in settings' order
# (tests/copilot/test_webhook_route.py holds them to it). Left out: WhiteNoise (no static
# file lives under /webhooks/), sessions, CSRF, auth, messages, CSP and htmx.
MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
# Worker threads for the views. Each holds a database connection only while it runs one; the
# work is one short query or transaction, so a few keep the database busy while the event
# loop reads the next requests, and more would only contend for the GIL.
THREADS = 8


@functools.lru_cache(maxsize=4096)
def _resolve_webhook(path: str) -> ResolverMatch | None:
    """The match for a webhook view's ``path``, else None. Kept: VideoDB calls the same few
    URLs (one per session, one per stream) over and over, and walking the URLconf for each
    call was a tenth of the route's time. A match is only read, never changed."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match if match.func in VIEWS else None


class WebhookRoute:
    """ASGI application: webhook requests served here, everything else by ``django_app``."""

    def __init__(self, django_app: ASGIApp, *, threads: int = THREADS) -> None:
        self.django_app = django_app
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        self._chain = self._wrapped(self._call_view)
        self._repeat_chain = self._wrapped(lambda request: webhooks.duplicate_answer())

    @staticmethod
    def _wrapped(view: Callable[[HttpRequest], HttpResponseBase]) -> Callable:
        """``view`` inside the machine's middleware, as Django's chain wraps a view."""
        handler = convert_exception_to_response(view)
        for path in reversed(MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = self._webhook_match(scope)
        if match is None:
            await self.django_app(scope, receive, send)
            return
        body = await self._read_body(receive)
        if body is None:
            return  # the client went away before its request was complete
        try:
            request = ASGIRequest(scope, io.BytesIO(body))
        except UnicodeDecodeError:
            # As Django's handler answers a path it cannot decode.
            logger.warning("Bad Request (UnicodeDecodeError)", exc_info=True)
            refusal = HttpResponseBadRequest()
            await self._send(send, refusal, refusal.content)
            return
        request.resolver_match = match
        if self._is_known_repeat(request, match, body):
            response = self._repeat_chain(request)
            _log_if_refused(request, response)
            await self._send(send, response, response.content)
            return
        loop = asyncio.get_running_loop()
        response, content = await loop.run_in_executor(self._executor, self._respond, request)
        await self._send(send, response, content)

    @staticmethod
    def _is_known_repeat(request: HttpRequest, match: ResolverMatch, body: bytes) -> bool:
        return (
            match.func is webhooks.lifecycle_webhook
            and request.method == "POST"
            and webhooks.known_repeat(body, match.kwargs["secret"])
        )

    @staticmethod
    def _webhook_match(scope: Scope) -> ResolverMatch | None:
        """Django's resolver match when ``scope`` is a request for a webhook view, else None."""
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            return None
        if scope.get("root_path"):
            return None  # mounted under a prefix: Django's handler knows how to strip it
        return _resolve_webhook(scope["path"])

    @staticmethod
    async def _read_body(receive: Receive) -> bytes | None:
        """The body, cut one byte past the webhook limit (the view then answers 413); None
        when the client disconnected first."""
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > limit or not message.get("more_body", False):
                return b"".join(chunks)[: limit + 1]

    def _respond(self, request: HttpRequest) -> tuple[HttpResponseBase, bytes]:
        """In a worker thread: the request from ``request_started`` to ``request_finished``."""
        signals.request_started.send(sender=self.__class__, scope=request.scope)
        response: HttpResponseBase | None = None
        try:
            response = self._chain(request)
            response._resource_closers.append(request.close)
            _log_if_refused(request, response)
            content = (
                b"".join(response.streaming_content) if response.streaming else response.content
            )
        finally:
            if response is not None:
                response.close()  # sends request_finished
            else:
                signals.request_finished.send(sender=self.__class__)
        return response, content

    @staticmethod
    def _call_view(request: HttpRequest) -> HttpResponse:
        match = request.resolver_match
        return match.func(request, *match.args, **match.kwargs)

    @staticmethod
    async def _send(send: Send, response: HttpResponseBase, content: bytes) -> None:
        if not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(content))
        headers = [
            (name.encode("ascii"), value.encode("latin-1")) for name, value in response.items()
        ]
        headers += [
            (b"Set-Cookie", cookie.OutputString().encode("ascii"))
            for cookie in response.cookies.values()
        ]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})


def _log_if_refused(request: HttpRequest, response: HttpResponseBase) -> None:
    """The 4xx/5xx log line Django's handler writes (once: ``log_response`` marks it)."""
    if response.status_code >= 400:
        log_response(
            "%s: %s", response.reason_phrase, request.path, response=response, request=request
        )
