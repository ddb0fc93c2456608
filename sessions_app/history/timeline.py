"""A past session at a glance: durations, counts, and the timeline picture.

The timeline is drawn by the server as SVG (no charting script to load, nothing for CSP to
allow): a row per audio channel whose bars show how much of each slice of time was speech,
a row of ticks where the screen changed (one per screen span: an unchanged screen described
again and again is one tick), a marker per alert, and a time axis. Each row is an HTML line
with its label and an SVG as wide as the page leaves it; positions are percentages of that
width and nothing is scaled, so labels keep their real type size on a phone. The axis is
labelled at round times (every 1, 2, 5, 10, 15 … minutes), in two sets: a denser one for
wide screens and a sparser one that a narrow timeline shows instead (the page's CSS picks
one by the timeline's own width). Geometry is computed here;
templates/sessions_app/history.html only prints numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.urls import reverse

from sessions_app.history.record import Note, SessionRecord, format_offset, format_range
from sessions_app.history.repeats import Group

ROW_HEIGHT = 28  # px: each row's SVG is this tall
BUCKETS = 120
# Round steps the axis may be labelled at, in seconds.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600)
# At most this many steps between the first and last label: wide screens, narrow ones.
WIDE_STEPS = 10
NARROW_STEPS = 4
# A label this close to either end is aligned to that end, so it stays inside the picture.
EDGE_PERCENT = 6.0


@dataclass(frozen=True)
class Tick:
    x: float  # percent of the plot's width
    label: str
    anchor: str  # SVG text-anchor: start, middle or end


@dataclass(frozen=True)
class Bar:
    x: float  # percent of the plot's width, as ``width``
    width: float
    height: float
    y: float
    share: float  # 0..1 of the slice that was speech
    title: str
    offset_ms: int


@dataclass(frozen=True)
class Marker:
    x: float  # percent of the plot's width
    title: str
    anchor: str  # the element id it links to
    offset_ms: int


@dataclass
class Row:
    label: str
    kind: str  # "speech" | "screen" | "alerts"
    bars: list[Bar] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)


@dataclass
class Timeline:
    rows: list[Row]
    ticks: list[Tick]  # for a wide timeline
    narrow_ticks: list[Tick]  # fewer, for a narrow one (a phone)
    duration_ms: int
    row_height: int = ROW_HEIGHT


@dataclass(frozen=True)
class Counts:
    """What the session holds, as the page shows it and as VideoDB reported it."""

    lines: int
    screens: int  # screen spans shown
    descriptions: int  # screen descriptions VideoDB sent
    insights: int  # insights shown, each once
    reported: int  # insights VideoDB sent, copies included
    alerts: int


def counts(record: SessionRecord) -> Counts:
    return Counts(
        lines=len(record.lines),
        screens=len(record.screens),
        descriptions=len(record.visual),
        insights=len(record.insights),
        reported=len(record.audio),
        alerts=len(record.alerts),
    )


@dataclass(frozen=True)
class Shown:
    """A screen span or an insight as the history page lists it: once, for all its copies."""

    id: int  # its first copy: the element's id, which links and evidence name
    other_ids: tuple[int, ...]  # the other copies: a link to one lands on this element too
    start_ms: int
    when: str  # "00:10-01:40" for a screen span, the start for an insight
    text: str
    count: int  # how many copies VideoDB sent
    speakers: tuple[str, ...]  # whose channels reported it


def shown(groups: list[Group[Note]], *, spans: bool) -> list[Shown]:
    """``groups`` (the record's ``screens`` or ``insights``) as the page lists them."""
    listed = []
    for group in groups:
        start, end = span_offsets(group)
        listed.append(
            Shown(
                id=group.id,
                other_ids=group.ids[1:],
                start_ms=group.start_ms,
                when=format_range(start, end) if spans else format_offset(start),
                text=group.text,
                count=group.count,
                speakers=group.speakers,
            )
        )
    return listed


@dataclass(frozen=True)
class ChannelStats:
    speaker: str
    channel: str
    lines: int
    speech_ms: int

    @property
    def speech(self) -> str:
        return format_offset(self.speech_ms)


def _x(duration_ms: int, offset_ms: int) -> float:
    """Where ``offset_ms`` is across the plot, in percent."""
    if duration_ms <= 0:
        return 0.0
    return round(100 * min(max(offset_ms, 0), duration_ms) / duration_ms, 3)


def round_step(duration_ms: int, most: int) -> int:
    """The shortest round step (ms) that labels ``duration_ms`` with at most ``most`` steps."""
    for seconds in STEPS:
        if duration_ms <= most * seconds * 1000:
            return seconds * 1000
    return -(-duration_ms // (most * 3_600_000)) * 3_600_000  # whole hours beyond STEPS


def ticks(duration_ms: int, most: int) -> list[Tick]:
    """Labels at round times from 00:00 to the end: 0, one step, two steps, …"""
    step = round_step(duration_ms, most)
    placed = []
    for at in range(0, max(duration_ms, 0) + 1, step):
        x = _x(duration_ms, at)
        anchor = "start" if x < EDGE_PERCENT else "end" if x > 100 - EDGE_PERCENT else "middle"
        placed.append(Tick(x=x, label=format_offset(at), anchor=anchor))
    return placed


def timeline(record: SessionRecord) -> Timeline:
    """The picture of ``record``: speech density per audio channel, scene changes, alerts."""
    duration = max(
        record.duration_ms,
        max((i.end_offset_ms for i in [*record.lines, *record.visual, *record.alerts]), default=0),
        1,
    )
    rows: list[Row] = []
    slice_ms = duration / BUCKETS
    audio_streams = [
        s
        for s in record.streams
        if s.has_audio or any(line.stream_id == s.id for line in record.lines)
    ]
    bar_width = round(100 / BUCKETS, 3)
    for stream in audio_streams:
        row = Row(label=stream.speaker, kind="speech")
        spoken = [0.0] * BUCKETS
        for line in record.lines:
            if line.stream_id != stream.id:
                continue
            start, end = line.offset_ms, max(line.end_offset_ms, line.offset_ms + 1)
            first, last = int(start // slice_ms), min(int((end - 1) // slice_ms), BUCKETS - 1)
            for b in range(max(first, 0), last + 1):
                lo, hi = b * slice_ms, (b + 1) * slice_ms
                spoken[b] += max(0.0, min(end, hi) - max(start, lo))
        for b, ms in enumerate(spoken):
            if ms <= 0:
                continue
            share = min(ms / slice_ms, 1.0)
            height = round(max(share * (ROW_HEIGHT - 6), 2), 2)
            offset = int(b * slice_ms)
            row.bars.append(
                Bar(
                    x=_x(duration, offset),
                    width=bar_width,
                    height=height,
                    y=round(ROW_HEIGHT - 4 - height, 2),
                    share=round(share, 2),
                    title=f"{stream.speaker}, {format_offset(offset)}: "
                    f"{round(share * 100)}% speech",
                    offset_ms=offset,
                )
            )
        rows.append(row)

    def marks(label: str, kind: str, items: list, describe: Callable, prefix: str) -> None:
        row = Row(label=label, kind=kind)
        row.markers = [
            Marker(
                x=_x(duration, item.offset_ms),
                title=describe(item),
                anchor=f"{prefix}-{item.id}",
                offset_ms=item.offset_ms,
            )
            for item in items
        ]
        rows.append(row)

    spans = [_span_mark(span) for span in record.screens]
    marks("Screen", "screen", spans, lambda s: f"{s.when} on screen: {s.text[:120]}", "ins")
    marks(
        "Alerts",
        "alerts",
        record.alerts,
        lambda f: f"{format_offset(f.offset_ms)} alert: {f.title}",
        "alert",
    )
    return Timeline(
        rows=rows,
        ticks=ticks(duration, WIDE_STEPS),
        narrow_ticks=ticks(duration, NARROW_STEPS),
        duration_ms=duration,
    )


@dataclass(frozen=True)
class _SpanMark:
    id: int
    offset_ms: int
    when: str
    text: str


def _span_mark(span: Group[Note]) -> _SpanMark:
    """A screen span's tick: at its start, titled with its range ("00:10-01:40 …")."""
    start, end = span_offsets(span)
    return _SpanMark(id=span.id, offset_ms=start, when=format_range(start, end), text=span.text)


def span_offsets(group: Group[Note]) -> tuple[int, int]:
    """Where a group's copies start and end, as offsets into the session."""
    return (
        min(copy.offset_ms for copy in group.copies),
        max(copy.end_offset_ms for copy in group.copies),
    )


def channel_stats(record: SessionRecord) -> list[ChannelStats]:
    """Lines and speaking time per audio channel, busiest first."""
    stats = []
    for stream in record.streams:
        lines = [line for line in record.lines if line.stream_id == stream.id]
        if not lines and not stream.has_audio:
            continue
        stats.append(
            ChannelStats(
                speaker=stream.speaker,
                channel=stream.kind_label,
                lines=len(lines),
                speech_ms=sum(max(0, line.end_offset_ms - line.offset_ms) for line in lines),
            )
        )
    return sorted(stats, key=lambda s: -s.speech_ms)


def moment_at(record: SessionRecord, offset_ms: int) -> int | None:
    """The transcript line a jump to ``offset_ms`` lands on: the line being spoken then, else
    the last one before it, else the first one (None when nothing was said)."""
    best: int | None = None
    for line in record.lines:  # in time order
        if line.offset_ms > offset_ms:
            return best if best is not None else line.id
        best = line.id
        if offset_ms <= line.end_offset_ms:
            return best
    return best


def moment_url(session_id: int, start_ms: int, anchor: str = "") -> str:
    """Where a hit opens: the session's history at that moment (VideoDB ms), scrolled to the
    item's element when there is one."""
    url = reverse("session-history", args=[session_id]) + "?" + urlencode({"at": start_ms})
    return f"{url}#{anchor}" if anchor else url
