"""Each pytest-xdist worker gets a var directory and Redis databases of its own.

``./dev test`` runs the suite on several workers (pytest-xdist): most of a test's time is
spent waiting for the servers, Celery workers, relays and browsers it started, so a
2-core machine runs several at once. Workers must not share what one test run owns:

- the SQLite test database, the collected static files and the logs under COPILOT_VAR_DIR;
- the Redis databases of REDIS_URL and CHANNEL_REDIS_URLS (Celery's queues, the channel
  layer's groups, the live interims): worker N counts down from the configured database
  (15, 14, 13, ... by default), wrapping past 0;
- the PostgreSQL test database, which pytest-django already names per worker (``_gw0``).

This module is loaded with ``-p`` (pyproject's addopts), so it runs before pytest-django
imports the settings that read these variables. Outside xdist it changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = 16  # a stock redis-server's `databases`


def worker_index() -> int | None:
    """0 for xdist's gw0, 1 for gw1, ...; None when not running on an xdist worker."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else None


def redis_url_for_worker(url: str, index: int) -> str:
    """``url`` moved down ``index`` databases (redis://h:6379/15 -> /14 for worker 1)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return url  # a unix socket URL names its database in the query: left as given
    path = parts.path.strip("/")
    database = int(path) if path.isdigit() else 0
    return urlunsplit(parts._replace(path=f"/{(database - index) % REDIS_DATABASES}"))


def isolate(index: int) -> None:
    root = Path(__file__).resolve().parent.parent
    var_dir = Path(os.environ.get("COPILOT_VAR_DIR") or root / "var")
    os.environ["COPILOT_VAR_DIR"] = str(var_dir / f"worker-{index}")
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = redis_url_for_worker(os.environ["REDIS_URL"], index)
    if os.environ.get("CHANNEL_REDIS_URLS"):
        os.environ["CHANNEL_REDIS_URLS"] = ",".join(
            redis_url_for_worker(url.strip(), index)
            for url in os.environ["CHANNEL_REDIS_URLS"].split(",")
        )


_index = worker_index()
if _index is not None:
    isolate(_index)
