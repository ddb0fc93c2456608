"""The live path's one contract: which group a session's viewers join, what a live message
looks like, how each stored item renders, and how a browser that reconnects catches up.

The relay publishes through here after storing an event, and the intelligence services
after storing a brief or an answer; the consumer replays through here on (re)connect; the
page renders the same partials on load. So the live page, a replay and
a reload can never disagree.

Every item carries the session sequence number of its last change (``seq``). A message is
one rendered fragment whose root element has a stable id (``seg-12``, ``ins-3``,
``alert-9``, ``brief-5``): the browser replaces the element with that id, or inserts it in
its list when it has none, so a message received twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models import Model
from django.template.loader import render_to_string

from sessions_app.history import repeats
from sessions_app.history.record import epoch_ms, format_offset
from sessions_app.intelligence import citations
from sessions_app.live import groups
from sessions_app.models import (
    Alert,
    Brief,
    BriefItem,
    CaptureSession,
    Insight,
    Question,
    RTStream,
    TranscriptSegment,
)

logger = logging.getLogger(__name__)

LIVE_TEMPLATE = "sessions_app/live.html"
ASK_TEMPLATE = "sessions_app/ask.html"
BRIEF_TEMPLATE = "sessions_app/brief.html"
# Items per replay reply: a browser further behind gets a page, a "more" marker, and asks
# again (static/copilot/live.js), so one 33-byte resume costs a bounded reply.
REPLAY_PAGE = 300
PUBLISH_TIMEOUT_SECONDS = 5.0
# A failed channel-layer send (Redis restarting, a stale pooled connection) is tried again
# after these pauses, all within PUBLISH_RETRY_SECONDS, so the relay's lane waits at most
# that long for one update and the caller's ``.result(PUBLISH_TIMEOUT_SECONDS)`` still holds.
PUBLISH_BACKOFF_SECONDS = (0.1, 0.3, 0.9, 2.0)
PUBLISH_RETRY_SECONDS = 4.0
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
    template = LIVE_TEMPLATE
    if isinstance(item, TranscriptSegment):
        name, context = "segment", {"segment": item}
    elif isinstance(item, Insight):
        # On its own: an insight is shown in its group of repeats (``render_group``).
        return render_group(repeats.Group((item,)), session=session, seq=item.seq, oob=oob)
    elif isinstance(item, Alert):
        name, context = "alert", {"alert": item}
    elif isinstance(item, RTStream):
        name, context = "speaker", {"stream": item}
    elif isinstance(item, Question):
        # Its citations resolved already (a whole list at once), or here.
        cited = getattr(item, "citations", None)
        if cited is None:
            cited = citations.of(session, item.evidence)
        template, name, context = ASK_TEMPLATE, "question", {"question": item, "cited": cited}
    elif isinstance(item, BriefItem):
        cited = getattr(item, "citations", None)
        if cited is None:
            cited = citations.of(session, item.evidence)
        template, name, context = BRIEF_TEMPLATE, "item", {"item": item, "cited": cited}
    else:
        raise TypeError(f"no live partial for {type(item).__name__}")
    start_ms = getattr(item, "start_ms", None)
    context.update(
        session=session,
        oob=oob,
        offset=offset_label(session, start_ms) if start_ms is not None else "",
    )
    return render_to_string(f"{template}#{name}", context)


def render_interim(stream: RTStream, *, text: str, start_ms: int) -> str:
    """A line still being spoken, pushed and never stored (``live/interim.py``). One element
    per stream (``interim-<stream id>``): the next interim replaces it, and the stored final
    of the same line removes it (static/copilot/live.js). It has no ``data-seq``: nothing
    numbered, so it never moves a browser's resume cursor."""
    context = {
        "stream": stream,
        "text": text,
        "start_ms": start_ms,
        "offset": offset_label(stream.session, start_ms),
    }
    return render_to_string(f"{LIVE_TEMPLATE}#interim", context)


def interim_message(stream: RTStream, *, text: str, start_ms: int) -> LiveUpdate:
    html = render_interim(stream, text=text, start_ms=start_ms)
    return {"type": "live.update", "seq": UNSEQUENCED, "html": html}


def render_status(session: CaptureSession, *, oob: bool = True) -> str:
    context = {"session": session, "oob": oob, "status_rank": STATUS_RANKS[session.status]}
    return render_to_string(f"{LIVE_TEMPLATE}#status", context)


def message(item: Model, session: CaptureSession) -> LiveUpdate:
    if isinstance(item, Insight):
        return _insight_message(item, session)
    return {"type": "live.update", "seq": item.seq, "html": render(item, session=session)}


# --- insights, shown once (sessions_app/history/repeats.py, sessions_app/live/groups.py) --
#
# An insight VideoDB repeated is one element, ``ins-<first copy's id>``, re-rendered whole
# when a copy arrives, carrying the seq of the change that made it (so a late copy of an
# older state never replaces it). An element whose group no longer exists (a span whose
# first copy changed, two spans joined by a late copy) is removed by a "delete" fragment.


def render_group(
    group: repeats.Group[Insight], *, session: CaptureSession, seq: int, oob: bool = True
) -> str:
    """A screen span or an insight with its copies, under its first copy's id."""
    latest = max(group.copies, key=lambda copy: copy.seq)
    visual = group.first.kind == Insight.Kind.VISUAL
    until = offset_label(session, group.end_ms) if visual else ""
    offset = offset_label(session, group.start_ms)
    context = {
        "group": group,
        "visual": visual,
        "seq": seq,
        "stream_id": latest.stream_id,
        "offset": offset,
        "until": until if until != offset else "",
        "speakers": group.speakers if group.count > 1 else (),
        "session": session,
        "oob": oob,
    }
    return render_to_string(f"{LIVE_TEMPLATE}#insight", context)


def render_gone(insight_id: int, *, seq: int) -> str:
    """Removes the element of a group that no longer exists."""
    return render_to_string(f"{LIVE_TEMPLATE}#gone", {"insight_id": insight_id, "seq": seq})


def _render_changes(
    change: repeats.Changes[Insight], session: CaptureSession, seq: int
) -> list[str]:
    return [render_gone(gone, seq=seq) for gone in change.gone] + [
        render_group(group, session=session, seq=seq) for group in change.show
    ]


def _insight_message(insight: Insight, session: CaptureSession) -> LiveUpdate:
    """A stored insight's push: its group again, in place (and what else that changed)."""
    fragments = _render_changes(groups.after_storing(insight), session, insight.seq)
    return {"type": "live.update", "seq": insight.seq, "html": "".join(fragments)}


def _insight_replay(
    session: CaptureSession, after_seq: int, *, before: int | None = None
) -> list[LiveUpdate]:
    """The insight groups a browser that reflects ``after_seq`` shows out of date, each
    with the seq of its newest change (only those numbered below ``before``, if given)."""
    change = groups.since(session, after_seq)
    if not change.show and not change.gone:
        return []
    newest = max(
        (copy.seq for group in change.show for copy in group.copies), default=after_seq + 1
    )
    updates: list[LiveUpdate] = []
    for group in change.show:
        seq = max((copy.seq for copy in group.copies if copy.seq > after_seq), default=newest)
        if before is not None and seq >= before:
            continue  # on a later page
        html = render_group(group, session=session, seq=seq)
        updates.append({"type": "live.update", "seq": seq, "html": html})
    if change.gone and (before is None or newest < before):
        html = "".join(render_gone(gone, seq=newest) for gone in change.gone)
        updates.append({"type": "live.update", "seq": newest, "html": html})
    return updates


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
    deadline = time.monotonic() + PUBLISH_RETRY_SECONDS
    for update in updates:
        await _send_one(layer, group_name(session_id), update, deadline)


async def _send_one(layer: Any, group: str, update: Mapping[str, Any], deadline: float) -> None:
    """``group_send``, tried again after a failure while the deadline allows. A copy sent
    twice changes nothing on the page (its id and seq), so retrying is always safe."""
    for attempt, pause in enumerate((*PUBLISH_BACKOFF_SECONDS, None)):
        try:
            await layer.group_send(group, dict(update))
            return
        except Exception:
            left = deadline - time.monotonic()
            if pause is None or left <= pause:
                raise
            logger.warning(
                "publish to %s failed (attempt %d); retrying in %.1f s",
                group,
                attempt + 1,
                pause,
                exc_info=True,
            )
            await asyncio.sleep(pause)


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
    """What changed after ``after_seq``, in sequence order, rendered (its first page)."""
    return replay_page(session, after_seq)[0]


def replay_page(
    session: CaptureSession, after_seq: int, *, limit: int | None = None
) -> tuple[list[LiveUpdate], int | None]:
    """What changed after ``after_seq``, in sequence order, rendered: at most ``limit``
    updates, and the seq they cover up to when more follow (None: nothing more).

    A page ends just before the first seq left out, so every change up to that number is in
    it; only what the page holds is rendered (the insight groups beyond it are not)."""
    limit = REPLAY_PAGE if limit is None else limit
    items: list[Model] = []
    related = {TranscriptSegment: ("stream",), Alert: ("stream", "rule")}
    for model in (TranscriptSegment, Alert):  # insights: by group, below
        items.extend(
            model.objects.filter(session=session, seq__gt=after_seq)
            .select_related(*related[model])
            .order_by("seq")[: limit + 1]
        )
    items.extend(
        Question.objects.filter(session=session, seq__gt=after_seq)
        .select_related("asked_by")
        .order_by("seq")[: limit + 1]
    )
    # The brief's items, those it no longer holds too (their hidden copy removes them).
    items.extend(
        BriefItem.objects.filter(session=session, seq__gt=after_seq).order_by("seq")[: limit + 1]
    )
    items.sort(key=lambda item: item.seq)
    # Items past the page need no rendering: the next page renders them.
    cutoff = items[limit].seq if len(items) > limit else None
    kept = [item for item in items if cutoff is None or item.seq < cutoff]
    updates = [message(item, session) for item in kept]
    updates += _insight_replay(session, after_seq, before=cutoff)
    updates.sort(key=lambda update: update["seq"])
    if len(updates) <= limit and cutoff is None:
        return updates, None
    if len(updates) > limit:
        first_left_out = updates[limit]["seq"]
        cutoff = first_left_out if cutoff is None else min(cutoff, first_left_out)
    page = [update for update in updates if update["seq"] < cutoff]
    if not page:  # more than a page of updates share one seq: send them all, still bounded
        page = [update for update in updates if update["seq"] == cutoff]
        return page, cutoff
    return page, cutoff - 1


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
    was one page of more (``complete`` False) the browser asks again from ``through``."""
    return render_to_string(f"{LIVE_TEMPLATE}#synced", {"through": through, "complete": complete})


def render_brief_status(session: CaptureSession, *, oob: bool = True) -> str:
    """The brief's status line: when the latest brief was made, or why it is paused (read
    now, not from ``session``, which may have been loaded before the brief changed)."""
    latest = Brief.objects.filter(session=session).order_by("-number").first()
    paused = CaptureSession.objects.values_list("brief_paused", flat=True).get(pk=session.pk)
    rank = 2 * (latest.number if latest else 0) + (1 if paused else 0)
    context = {"latest": latest, "paused": paused, "rank": rank, "oob": oob}
    return render_to_string(f"{BRIEF_TEMPLATE}#status", context)


def brief_status_message(session: CaptureSession) -> LiveUpdate:
    return {"type": "live.update", "seq": UNSEQUENCED, "html": render_brief_status(session)}


def current_state(session: CaptureSession) -> list[str]:
    """The unsequenced parts as they are now: the status banner, each stream's speaker name
    and health row, the brief's status line. Sent after every resume, and whenever the
    status changes."""
    fragments = [render_status(session), render_brief_status(session)]
    for stream in session.streams.all():
        stream.session = session
        # The health row first: a stream new to the page then has a speaker to rename.
        fragments.append(render_health(stream, session=session))
        if stream.has_audio:  # only a channel that speaks has a speaker name on the page
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
    for group in groups.all_groups(session):
        target = "screen" if group.first.kind == Insight.Kind.VISUAL else "insights"
        seq = groups.latest_seq(group)
        lists[target].append(render_group(group, session=session, seq=seq, oob=False))
    alerts = list(session.alerts.select_related("stream", "rule"))
    for alert in alerts:
        lists["alerts"].append(render(alert, session=session, oob=False))
    questions = list(session.questions.select_related("asked_by").order_by("-asked_at", "-pk"))
    citations.attach(session, questions)
    lists["questions"] = [render(q, session=session, oob=False) for q in questions]
    return {
        **lists,
        "brief": _brief_sections(session),
        "brief_status": render_brief_status(session, oob=False),
        "last_seq": last_seq,
        "status_rank": STATUS_RANKS[session.status],
        "streams": list(session.streams.all()),
    }


# The brief's lists on the page, in order, and what each says while empty.
BRIEF_SECTIONS = (
    (BriefItem.Kind.SUMMARY, "Summary so far", "Nothing summarised yet."),
    (BriefItem.Kind.DECISION, "Decisions", "No decisions yet."),
    (BriefItem.Kind.ACTION, "Action items", "No action items yet."),
    (BriefItem.Kind.QUESTION, "Open questions", "No open questions."),
)


def _brief_sections(session: CaptureSession) -> list[dict[str, object]]:
    """The brief's current items, rendered, per list, in the order of their moments."""
    current = list(
        BriefItem.objects.filter(session=session, is_current=True).order_by("start_ms", "pk")
    )
    citations.attach(session, current)
    return [
        {
            "kind": kind,
            "heading": heading,
            "empty": empty,
            "items": [render(i, session=session, oob=False) for i in current if i.kind == kind],
        }
        for kind, heading, empty in BRIEF_SECTIONS
    ]
