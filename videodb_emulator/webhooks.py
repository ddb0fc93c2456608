"""At-least-once HTTP delivery of lifecycle webhooks and alert callbacks.

Each ordering key (a capture session, an alert) has its own worker, so a slow
or failing receiver only delays its own stream of events and never the API:
receivers are allowed to call the API back while their delivery is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .config import WebhookPolicy
from .state import iso_now, new_id

log = logging.getLogger(__name__)

HISTORY_LIMIT = 20000


@dataclass
class Attempt:
    number: int
    at: str
    status: int | None
    error: str | None
    duration_ms: float
    response_excerpt: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at,
            "status": self.status,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 1),
            "response_excerpt": self.response_excerpt,
        }


@dataclass
class Delivery:
    id: str
    seq: int
    kind: str  # "webhook" (lifecycle envelope) or "alert" (alert callback)
    key: str
    url: str
    body: dict[str, Any]
    event_id: str | None
    event: str | None
    duplicate_of: str | None = None
    state: str = "pending"
    attempts: list[Attempt] = field(default_factory=list)
    created_at: str = field(default_factory=iso_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.id,
            "seq": self.seq,
            "kind": self.kind,
            "key": self.key,
            "url": self.url,
            "event": self.event,
            "event_id": self.event_id,
            "duplicate_of": self.duplicate_of,
            "state": self.state,
            "body": self.body,
            "attempts": [a.to_dict() for a in self.attempts],
            "created_at": self.created_at,
        }


class WebhookDispatcher:
    def __init__(self, policy: Callable[[], WebhookPolicy]) -> None:
        self._policy = policy
        self._queues: dict[str, deque[Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random(policy().seed)  # noqa: S311 - test determinism, not security
        self._seq = 0
        self.history: deque[Delivery] = deque(maxlen=HISTORY_LIMIT)

    def reseed(self, seed: int | None) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - test determinism, not security

    async def close(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def enqueue(
        self,
        *,
        kind: str,
        key: str,
        url: str,
        body: dict[str, Any],
        event_id: str | None,
        event: str | None = None,
    ) -> Delivery:
        policy = self._policy()
        delivery = self._make(kind, key, url, body, event_id, event)
        self._push(delivery)
        if policy.duplicate_rate > 0 and self._rng.random() < policy.duplicate_rate:
            dup = self._make(kind, key, url, body, event_id, event)
            dup.duplicate_of = delivery.id
            self._push(dup)
        return delivery

    def _make(
        self,
        kind: str,
        key: str,
        url: str,
        body: dict[str, Any],
        event_id: str | None,
        event: str | None,
    ) -> Delivery:
        self._seq += 1
        delivery = Delivery(
            id=new_id("dlv"),
            seq=self._seq,
            kind=kind,
            key=key,
            url=url,
            body=body,
            event_id=event_id,
            event=event,
        )
        self.history.append(delivery)
        return delivery

    def _push(self, delivery: Delivery) -> None:
        queue = self._queues.setdefault(delivery.key, deque())
        queue.append(delivery)
        if delivery.key not in self._workers:
            task = asyncio.get_running_loop().create_task(self._worker(delivery.key))
            self._workers[delivery.key] = task

    async def _worker(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                policy = self._policy()
                if policy.shuffle_window > 1:
                    # Let the batch fill so that shuffling has something to shuffle.
                    await asyncio.sleep(policy.shuffle_linger)
                    batch = [queue.popleft() for _ in range(min(policy.shuffle_window, len(queue)))]
                    self._rng.shuffle(batch)
                else:
                    batch = [queue.popleft()]
                for delivery in batch:
                    await self._deliver(delivery)
        finally:
            # Single-threaded loop: nothing can be queued between the empty check and
            # here. If cancelled with work left, the next push starts a fresh worker.
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "videodb-emulator-webhooks/1"},
            )
        return self._session

    async def _deliver(self, delivery: Delivery) -> None:
        policy = self._policy()
        attempts = max(1, policy.max_attempts)
        for number in range(1, attempts + 1):
            started = time.perf_counter()
            status: int | None = None
            error: str | None = None
            excerpt: str | None = None
            try:
                async with self._client().post(
                    delivery.url,
                    json=delivery.body,
                    timeout=aiohttp.ClientTimeout(total=policy.timeout),
                ) as resp:
                    status = resp.status
                    excerpt = (await resp.text(errors="replace"))[:200]
            except TimeoutError:
                error = f"timed out after {policy.timeout}s"
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            delivery.attempts.append(
                Attempt(
                    number=number,
                    at=iso_now(),
                    status=status,
                    error=error,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    response_excerpt=excerpt,
                )
            )
            if status is not None and 200 <= status < 300:
                delivery.state = "delivered"
                return
            if number < attempts:
                delay = min(policy.backoff_base * (2 ** (number - 1)), policy.backoff_max)
                await asyncio.sleep(delay)
        delivery.state = "failed"
        log.warning("giving up on %s after %d attempts to %s", delivery.id, attempts, delivery.url)

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values()) + len(self._workers)

    def snapshot(self, limit: int | None = None) -> list[dict[str, Any]]:
        items = list(self.history)
        if limit is not None:
            items = items[-limit:]
        return [d.to_dict() for d in items]

    def clear_history(self) -> None:
        self.history.clear()
