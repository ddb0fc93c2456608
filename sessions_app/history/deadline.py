"""VideoDB calls on the request path: all at once, under one deadline.

Gateway calls block. A page that needs several starts them together on these shared threads
and takes what answered in time; the page then says what did not. The threads are shared so
that a VideoDB that stops answering ties up at most ``THREADS`` of them, not a few more per
request, and a call still queued when its deadline passes never starts. Calls must not touch
the database: each of these threads would keep a connection of its own open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

# The SDK's HTTP session keeps 10 connections per host (requests' default pool): more calls
# at once than that would open connections only to throw them away.
THREADS = 10

_threads = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="videodb-call")


def call_all[T](calls: Sequence[Callable[[], T]], seconds: float) -> list[Future[T] | None]:
    """Start every call at once and wait at most ``seconds`` in all. Returns, in order, each
    call's finished future (``result()`` gives its value or raises its error), or None for a
    call that had not answered by then."""
    futures = [_threads.submit(call) for call in calls]
    done, late = wait(futures, timeout=seconds)
    for future in late:
        future.cancel()  # only succeeds for one that has not started: it never will
    return [future if future in done else None for future in futures]
