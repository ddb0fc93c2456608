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

A channel layer sharded over several Redis servers (``CHANNEL_REDIS_URLS``) is reported per
server as well, ``channel_layer.0``, ``channel_layer.1``… in that list's order: every group
and every process's inbox lives on one of them, so one server down is a partial outage that
the answer names; ``channel_layer`` is ok only when every server is.
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


def _redis_shards() -> int:
    """How many Redis servers the channel layer spreads over; 0 for the in-memory layer."""
    layer = get_channel_layer()
    if hasattr(layer, "connection") and hasattr(layer, "ring_size"):  # channels_redis
        return layer.ring_size
    return 0


def _ping_shard(index: int) -> Callable[[], Awaitable[None]]:
    async def ping() -> None:
        await get_channel_layer().connection(index).ping()

    return ping


async def _check_channel_layer() -> None:
    """The in-memory layer: a message through a channel of its own and back."""
    layer = get_channel_layer()
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


def _checks() -> dict[str, Callable[[], Awaitable[None]]]:
    """The checks to run: on Redis one PING per server of the channel layer."""
    checks = dict(CHECKS)
    shards = _redis_shards()
    if shards == 1:
        checks["channel_layer"] = _ping_shard(0)
    elif shards > 1:
        del checks["channel_layer"]  # summed up from its servers' answers below
        for index in range(shards):
            checks[f"channel_layer.{index}"] = _ping_shard(index)
    return checks


async def _run_check(name: str, check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT)
    except Exception as exc:  # a health check reports every failure, whatever its type
        logger.warning("health check %s failed: %r", name, exc)
        return f"error: {type(exc).__name__}"
    return "ok"


async def _check_all() -> dict[str, str]:
    checks = _checks()
    names = list(checks)
    outcomes = await asyncio.gather(*(_run_check(name, checks[name]) for name in names))
    results = dict(zip(names, outcomes, strict=True))
    shards = [name for name in names if name.startswith("channel_layer.")]
    if shards:
        down = [name.split(".", 1)[1] for name in shards if results[name] != "ok"]
        results["channel_layer"] = "ok" if not down else f"error: shard {', '.join(down)} down"
    return results


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
