"""``/healthz``: what a load balancer or docker compose asks before sending traffic.

It checks the parts a request depends on (database, channel layer) and says which one
failed; it never calls VideoDB, so an outage there does not take the dashboard out of
rotation.

It must answer under load (thousands of sockets on a busy session), so it waits on nothing
they hold:
- it is an async view, and probes arriving together share one check, whose answer stands
  for ``FRESH_SECONDS`` (a burst of probes costs one check);
- the database is asked on a thread of its own, bounded by ``CHECK_TIMEOUT``;
- on Redis the channel layer is asked with a PING. A round trip through a channel would
  queue behind this process's socket inbox, which every viewer's fan-out shares, and fail
  (``ChannelFull``) exactly when that inbox is busy. The in-memory layer has no such inbox:
  there a round trip is what proves it works.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0  # seconds; a probe that hangs is as bad as one that fails
FRESH_SECONDS = 1.0  # a result answers every probe that arrives within this long

_latest: tuple[float, dict[str, str]] | None = None
_running: asyncio.Future[dict[str, str]] | None = None


def _query_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # this thread is not a request's: give the connection back


async def _check_database() -> None:
    # Not the request's thread-sensitive executor: nothing queued there delays the answer.
    await sync_to_async(_query_database, thread_sensitive=False)()


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if hasattr(layer, "connection") and hasattr(layer, "ring_size"):  # channels_redis
        for index in range(layer.ring_size):
            await layer.connection(index).ping()
        return
    channel = await layer.new_channel()
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "health.ping", "token": token})
    message = await layer.receive(channel)
    if message.get("token") != token:
        raise RuntimeError("channel layer returned a different message")


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "database": _check_database,
    "channel_layer": _check_channel_layer,
}


async def _run_check(name: str, check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT)
    except Exception as exc:  # a health check reports every failure, whatever its type
        logger.warning("health check %s failed: %r", name, exc)
        return f"error: {type(exc).__name__}"
    return "ok"


async def _check_all() -> dict[str, str]:
    names = list(CHECKS)
    outcomes = await asyncio.gather(*(_run_check(name, CHECKS[name]) for name in names))
    return dict(zip(names, outcomes, strict=True))


async def current_results() -> dict[str, str]:
    """The checks' outcome: a fresh one, the one under way, or a new run."""
    global _latest, _running
    if _latest is not None and time.monotonic() - _latest[0] < FRESH_SECONDS:
        return _latest[1]
    loop = asyncio.get_running_loop()
    if _running is None or _running.done() or _running.get_loop() is not loop:
        _running = loop.create_task(_check_all())
    results = await asyncio.shield(_running)
    _latest = (time.monotonic(), results)
    return results


def forget() -> None:
    """Drop the kept result (tests change what the checks see)."""
    global _latest, _running
    _latest = _running = None


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    results = await current_results()
    healthy = all(value == "ok" for value in results.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": results},
        status=200 if healthy else 503,
    )
