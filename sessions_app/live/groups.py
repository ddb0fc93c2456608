"""The groups of repeats the live page shows stored insights in, read from the database.

The live page shows each insight once and the screen as spans, like every other page
(sessions_app/history/repeats.py): one element per group, ``ins-<first copy's id>``. When an
insight is stored, ``after_storing`` says what that changed on the page: nearly always the
one group it joined or started, shown again in place with the new copy; rarely more (a copy
that arrives late, from a backfill, can split a screen span in two or join two into one, and
a span's first copy can change, which removes the old element). ``since`` says the same for
a browser that reconnects, from everything it missed at once.

Storing is the relay's hot path, so ``after_storing`` reads only the insights around the new
one (one indexed query); it reads further back only when a group reaches the edge of what
it read.
"""

from __future__ import annotations

from sessions_app.history import repeats
from sessions_app.models import CaptureSession, Insight

# How far back (VideoDB time) the first read around a new insight goes. A screen unchanged
# for longer, or an insight repeated for longer, takes another read, twice as far back.
LOOKBACK_MS = 10 * 60_000


grouped = repeats.grouped


def _around(insight: Insight, since_ms: int) -> list[Insight]:
    """The insights a group with ``insight`` could hold that start at ``since_ms`` or later:
    its own stream's descriptions, or the session's audio insights; none stored after it."""
    rows = Insight.objects.filter(
        session_id=insight.session_id,
        kind=insight.kind,
        start_ms__gte=since_ms,
        seq__lte=insight.seq,
    )
    if insight.kind == Insight.Kind.VISUAL:
        rows = rows.filter(stream_id=insight.stream_id)
    return list(rows.select_related("stream").order_by("start_ms", "id"))


def _reaches_edge(
    insight: Insight, change: repeats.Changes[Insight], rows: list[Insight], since_ms: int
) -> bool:
    """Whether a changed group may hold insights from before ``since_ms``: a span that
    starts with the first insight read, or an insight group within the repeat bound of it."""
    if not rows:
        return False
    if insight.kind == Insight.Kind.VISUAL:
        earliest = rows[0].pk
        return earliest in change.gone or any(earliest in group.ids for group in change.show)
    reach = since_ms + repeats.REPEAT_WITHIN_MS
    return any(group.start_ms <= reach for group in change.show)


def after_storing(insight: Insight) -> repeats.Changes[Insight]:
    """What storing ``insight`` changed on the live page: the groups to show again (its own
    first) and the ids of groups that no longer exist."""
    lookback = LOOKBACK_MS
    while True:
        since = insight.start_ms - lookback
        rows = _around(insight, since)
        before = grouped(insight.kind, [row for row in rows if row.pk != insight.pk])
        change = repeats.changes(before, grouped(insight.kind, rows))
        if not _reaches_edge(insight, change, rows, since):
            return change
        older = Insight.objects.filter(
            session_id=insight.session_id, kind=insight.kind, start_ms__lt=since
        )
        if insight.kind == Insight.Kind.VISUAL:
            older = older.filter(stream_id=insight.stream_id)
        if not older.exists():
            return change
        lookback *= 2


def all_groups(session: CaptureSession) -> list[repeats.Group[Insight]]:
    """Every group of the session, screen spans and insights, in time order."""
    insights = list(session.insights.select_related("stream").order_by("start_ms", "id"))
    return _both(insights)


def _both(insights: list[Insight]) -> list[repeats.Group[Insight]]:
    groups = [
        *grouped(Insight.Kind.VISUAL, [i for i in insights if i.kind == Insight.Kind.VISUAL]),
        *grouped(Insight.Kind.AUDIO, [i for i in insights if i.kind == Insight.Kind.AUDIO]),
    ]
    return sorted(groups, key=lambda group: (group.start_ms, group.id))


def since(session: CaptureSession, after_seq: int) -> repeats.Changes[Insight]:
    """What changed on the live page after ``after_seq``: the page shows the groups of the
    insights numbered up to it; the groups of all of them are shown now."""
    insights = list(session.insights.select_related("stream").order_by("start_ms", "id"))
    if all(insight.seq <= after_seq for insight in insights):
        return repeats.Changes(show=[], gone=[])
    shown = _both([insight for insight in insights if insight.seq <= after_seq])
    return repeats.changes(shown, _both(insights))


def latest_seq(group: repeats.Group[Insight]) -> int:
    """The sequence number of the group's newest copy: what the page compares (data-seq)."""
    return max(copy.seq for copy in group.copies)
