"""Counting uses in fixed windows, in Django's cache: the brakes on sign-in and on costly
searches.

A name's count starts with its first use and lasts ``window`` seconds; past ``limit`` uses in
it, the name is held until the window ends. The default cache is per process (local memory),
so with several web processes each counts on its own: the limit holds per process.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.core.cache import cache

PREFIX = "throttle"


def _key(name: str) -> str:
    # Hashed: names carry user input (a username), and cache keys must be short and plain.
    return f"{PREFIX}:{hashlib.sha256(name.encode()).hexdigest()}"


def _seconds_left(key: str, window: int) -> int:
    started = cache.get(f"{key}:start")
    if started is None:
        return 0
    return max(1, math.ceil(started + window - time.time()))


def held_for(name: str, limit: int, window: int) -> int:
    """Seconds until ``name`` may be used again (0: it may be now), counting nothing."""
    key = _key(name)
    if (cache.get(key) or 0) < limit:
        return 0
    return _seconds_left(key, window)


def use(name: str, limit: int, window: int) -> int:
    """Count one use of ``name``: 0 if it is within ``limit`` for its window, else the
    seconds until the window ends."""
    key = _key(name)
    cache.add(f"{key}:start", time.time(), window)
    cache.add(key, 0, window)
    try:
        used = cache.incr(key)
    except ValueError:  # the window ended between add and incr
        cache.set(f"{key}:start", time.time(), window)
        cache.set(key, 1, window)
        used = 1
    return 0 if used <= limit else _seconds_left(key, window)


def forget(name: str) -> None:
    key = _key(name)
    cache.delete_many([key, f"{key}:start"])


def in_words(seconds: int) -> str:
    """ "3 minutes", "1 minute", "40 seconds": how long to wait, for a message."""
    if seconds >= 60:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
