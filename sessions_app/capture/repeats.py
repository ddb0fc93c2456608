"""Deliveries this process has seen stored, so that a copy is answered without the database.

VideoDB delivers at least once and retries: most webhook calls copy one already stored. The
database answers a copy in one round trip (``deliveries.find_claim``), but that round trip
needs a worker thread and a pooled connection, which cost more than the rest of the request
(bench/webhooks.py, README). A call that matches, in everything the database checked, one
this process has already seen stored (the same URL secret, the same session, the same
dedupe key) is answered as the database would answer it: "duplicate", nothing stored,
nothing enqueued.

Only what the database confirmed is remembered, each with the secret checked for it: a
delivery once its insert committed, and a copy the database found stored. A wrong secret, a
new delivery, or one forgotten goes to the database, as before. Entries last ``TTL_SECONDS``
(a session deleted meanwhile is answered 404 again after that; a delivery's row deleted
under a running server, which nothing in Copilot does, is stored again after that) and the
oldest go first past ``MAX_ENTRIES``. Each process remembers its own: a copy that reaches
another web process is answered there from the database.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

TTL_SECONDS = 600.0  # VideoDB's retries of one delivery come within minutes
MAX_ENTRIES = 50_000  # about 10 MB: far more deliveries than minutes of sessions send

_Key = tuple[str, str, str]
_stored: OrderedDict[_Key, float] = OrderedDict()  # key -> when it was remembered
# The view threads write and the event loop reads: an OrderedDict's move and pop are not
# atomic together.
_lock = threading.Lock()


def remember(secret: str, capture_session_id: str, dedupe_key: str) -> None:
    """The database holds this delivery, and ``secret`` opened its session's webhook."""
    key = (secret, capture_session_id, dedupe_key)
    with _lock:
        _stored[key] = time.monotonic()
        _stored.move_to_end(key)
        while len(_stored) > MAX_ENTRIES:
            _stored.popitem(last=False)


def known(secret: str, capture_session_id: str, dedupe_key: str) -> bool:
    """Whether a call with this secret, session and key was seen stored, recently."""
    key = (secret, capture_session_id, dedupe_key)
    with _lock:
        when = _stored.get(key)
        if when is None:
            return False
        if time.monotonic() - when > TTL_SECONDS:
            del _stored[key]
            return False
        return True
