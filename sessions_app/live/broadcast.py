"""The live path's one contract: which group a session's viewers join, what a live message
looks like, how each stored item renders, and how a browser that reconnects catches up.

The relay publishes through here after storing an event; the consumer replays through here
on (re)connect; the page renders the same partials on load. So the live page, a replay and
a reload can never disagree.

Every item carries the session sequence number of its last change (``seq``). A message is
one rendered fragment whose root element has a stable id (``seg-12``, ``ins-3``,
``alert-9``): the browser replaces the element with that id, or inserts it in its list when
it has none, so a message received twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models import Model
from django.template.loader import render_to_string

from sessions_app.history.record import epoch_ms, format_offset
from sessions_app.models import Alert, CaptureSession, Insight, RTStream, TranscriptSegment

logger = logging.getLogger(__name__)

LIVE_TEMPLATE = "sessions_app/live.html"
REPLAY_LIMIT = 2000  # items per replay batch; a browser further behind reloads the page
PUBLISH_TIMEOUT_SECONDS = 5.0
# The status only moves forward, in this order (CaptureSession.TRANSITIONS): a banner of a
# lower rank than the one shown is a late copy, which the browser does not swap in.
STATUS_RANKS = {status: rank for rank, status in enumerate(CaptureSession.Status.values)}


class LiveUpdate(TypedDict):
    """A channel-layer message to a session's group. ``type`` names the consumer handler."""

    type: Literal["live.update"]
    seq: int
    html: str


class SessionClosed(TypedDict):
    """Tell sockets to close: a session's, those of one share link (it was revoked), or a
    user's (they signed out: sent to their own group, ``share_link_id`` None)."""

    type: Literal["live.close"]
    code: int
    share_link_id: int | None


def group_name(session_id: int) -> str:
    return f"session.{session_id}"


def offset_label(session: CaptureSession, ms: int) -> str:
    """``mm:ss`` (or ``h:mm:ss``) since the session started, for the transcript margin."""
    base = epoch_ms(session.started_at) if session.started_at else ms
    return format_offset(ms - base)


def render(item: Model, *, session: CaptureSession, oob: bool = True) -> str:
    """The partial for one stored item, exactly as the page shows it."""
    if isinstance(item, TranscriptSegment):
        name, context = "segment", {"segment": item}
    elif isinstance(item, Insight):
        name, context = "insight", {"insight": item}
    elif isinstance(item, Alert):
        name, context = "alert", {"alert": item}
    elif isinstance(item, RTStream):
        name, context = "speaker", {"stream": item}
    else:
        raise TypeError(f"no live partial for {type(item).__name__}")
    start_ms = getattr(item, "start_ms", None)
    context.update(
        session=session,
        oob=oob,
        offset=offset_label(session, start_ms) if start_ms is not None else "",
    )
    return render_to_string(f"{LIVE_TEMPLATE}#{name}", context)


def render_status(session: CaptureSession, *, oob: bool = True) -> str:
    context = {"session": session, "oob": oob, "status_rank": STATUS_RANKS[session.status]}
    return render_to_string(f"{LIVE_TEMPLATE}#status", context)


def message(item: Model, session: CaptureSession) -> LiveUpdate:
    return {"type": "live.update", "seq": item.seq, "html": render(item, session=session)}


# The in-memory channel layer (the embedded default) works within one event loop, Daphne's,
# where the consumers run. Sync code on a thread of that loop (a view) reaches it through
# async_to_sync; the in-process Celery worker's threads have no loop of their own to share,
# so the runtime names Daphne's loop here and they publish through it.
_layer_loop: asyncio.AbstractEventLoop | None = None


def use_event_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Publish from threads outside ``loop`` through it (see ``_layer_loop``)."""
    global _layer_loop
    _layer_loop = loop


async def _send(session_id: int, updates: list[LiveUpdate]) -> None:
    layer = get_channel_layer()
    for update in updates:
        await layer.group_send(group_name(session_id), update)


def _run(send: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    loop = _layer_loop
    if loop is not None and loop.is_running() and not _runs_on(loop):
        asyncio.run_coroutine_threadsafe(send(*args), loop).result(PUBLISH_TIMEOUT_SECONDS)
    else:
        async_to_sync(send)(*args)


def _runs_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def publish(session: CaptureSession, updates: list[LiveUpdate]) -> None:
    """Send rendered updates to everyone watching the session (from sync code).

    A channel-layer failure is logged, never raised: what is published is stored already,
    and a browser's resume or a reload shows it; the caller's work must not be undone."""
    if not updates:
        return
    try:
        _run(_send, session.pk, updates)
    except Exception:
        logger.exception("could not publish %d update(s) to session %s", len(updates), session.pk)


async def apublish(session_id: int, updates: list[LiveUpdate]) -> None:
    """``publish`` from async code."""
    try:
        await _send(session_id, updates)
    except Exception:
        logger.exception("could not publish %d update(s) to session %s", len(updates), session_id)


def close_sockets(session_id: int, *, share_link_id: int | None, code: int = 4403) -> None:
    message: SessionClosed = {"type": "live.close", "code": code, "share_link_id": share_link_id}
    async_to_sync(get_channel_layer().group_send)(group_name(session_id), message)


def user_group_name(user_id: int) -> str:
    """Every live socket a signed-in user opened, whichever session it watches."""
    return f"user.{user_id}"


def close_user_sockets(user_id: int, *, code: int = 4401) -> None:
    message: SessionClosed = {"type": "live.close", "code": code, "share_link_id": None}
    async_to_sync(get_channel_layer().group_send)(user_group_name(user_id), message)


def replay(session: CaptureSession, after_seq: int) -> list[LiveUpdate]:
    """Everything that changed after ``after_seq``, in sequence order, rendered."""
    items: list[Model] = []
    related = ("stream",)
    for model in (TranscriptSegment, Insight, Alert):
        items.extend(
            model.objects.filter(session=session, seq__gt=after_seq)
            .select_related(*related)
            .order_by("seq")[:REPLAY_LIMIT]
        )
    items.sort(key=lambda item: item.seq)
    return [message(item, session) for item in items[:REPLAY_LIMIT]]


# --- what the socket adds around the items (consumers.py) ----------------------------------
#
# Speaker names and the session status are not sequenced (a rename has no ``seq``): they are
# sent with ``seq`` 0, forwarded to every socket as they come, and sent again in full after
# every resume, so a browser that reconnects is current without replaying their history.

UNSEQUENCED = 0


def speaker_message(stream: RTStream) -> LiveUpdate:
    """A renamed speaker, for every line of that stream on every open page."""
    return {
        "type": "live.update",
        "seq": UNSEQUENCED,
        "html": render(stream, session=stream.session),
    }


def render_health(stream: RTStream, *, session: CaptureSession, oob: bool = True) -> str:
    """One stream's row in the capture-health panel (its age is computed in the browser)."""
    return render_to_string(
        f"{LIVE_TEMPLATE}#health", {"stream": stream, "session": session, "oob": oob}
    )


def render_heartbeat(server_ms: int) -> str:
    """The answer to a browser's ping: proof of life, and the server clock for ages."""
    return render_to_string(f"{LIVE_TEMPLATE}#heartbeat", {"server_ms": server_ms})


def render_synced(through: int, *, complete: bool) -> str:
    """Sent after a replay: everything up to ``through`` is on the page now. When the replay
    was cut at ``REPLAY_LIMIT`` (``complete`` False) the browser reloads the page instead."""
    return render_to_string(f"{LIVE_TEMPLATE}#synced", {"through": through, "complete": complete})


def current_state(session: CaptureSession) -> list[str]:
    """The unsequenced parts as they are now: the status banner, each stream's speaker name
    and health row. Sent after every resume, and whenever the status changes."""
    fragments = [render_status(session)]
    for stream in session.streams.all():
        stream.session = session
        # The health row first: a stream new to the page then has a speaker to rename.
        fragments.append(render_health(stream, session=session))
        fragments.append(render(stream, session=session))
    return fragments


def publish_state(session: CaptureSession) -> None:
    """Show the session's current state on every open page. The owner's page refreshes its
    status card when the banner arrives (static/copilot/live.js): what only the owner may
    read (VideoDB's errors, the AI operations) never travels through the group, which
    share-link viewers receive too."""
    updates: list[LiveUpdate] = [
        {"type": "live.update", "seq": UNSEQUENCED, "html": fragment}
        for fragment in current_state(session)
    ]
    publish(session, updates)


def snapshot(session: CaptureSession) -> dict[str, object]:
    """Everything the live page shows on load, rendered with the pushes' partials (not oob).

    ``last_seq`` is read *before* the items: whatever it numbers is then on the page, so the
    browser's first resume asks for exactly what came after. An item that changes between
    the two reads is on the page already and replayed once more: harmless, by its id.
    """
    last_seq = CaptureSession.objects.values_list("last_seq", flat=True).get(pk=session.pk)
    lists: dict[str, list[str]] = {"transcript": [], "screen": [], "insights": [], "alerts": []}
    for segment in session.segments.select_related("stream"):
        lists["transcript"].append(render(segment, session=session, oob=False))
    for insight in session.insights.select_related("stream"):
        target = "screen" if insight.kind == Insight.Kind.VISUAL else "insights"
        lists[target].append(render(insight, session=session, oob=False))
    alerts = list(session.alerts.select_related("stream"))
    for alert in alerts:
        lists["alerts"].append(render(alert, session=session, oob=False))
    triggered = [alert for alert in alerts if alert.triggered]
    return {
        **lists,
        "last_seq": last_seq,
        "status_rank": STATUS_RANKS[session.status],
        "latest_alert": triggered[-1] if triggered else None,
        "streams": list(session.streams.all()),
    }
