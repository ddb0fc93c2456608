"""Search by meaning: ask VideoDB, map its answers to moments, merge them with ours.

VideoDB searches its own indexes of each RTStream (``rtstream.search``) and of exported
videos (collection search). Its answers name a stream or a video and a time; here they
become moments of sessions the asker may view, linked like keyword hits, and the two lists
become one: moments both found first, then VideoDB's by score, then ours, newest first.
A moment is listed once: the same line found in its stream and in the exported video is one
hit, under its speaker. Only the sessions in scope are asked about, never the whole
collection's other users.

VideoDB's score orders the hits but is not shown: the two searches score on scales of their
own (and the emulator's is the share of the query's words a line holds, so every line
holding one word of a four-word query scores 0.25), so a number would mean nothing to the
reader.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.db.models import Q
from django.utils.html import escape
from django.utils.safestring import SafeString

from copilot import throttle
from sessions_app import gateway
from sessions_app.history import deadline, record, search, search_text, timeline
from sessions_app.history.record import epoch_ms
from sessions_app.models import CaptureSession, RTStream, SearchEntry

logger = logging.getLogger(__name__)

# VideoDB is asked once per stream (and once about exported videos), all at once: bound the
# calls one search may make, and how long the page waits for all of them.
MAX_STREAMS = 12
HITS_PER_STREAM = 5
VIDEO_HITS = 20
DEADLINE_SECONDS = 3.0
# What is sent to VideoDB: a question, not a document (the keyword search reads up to
# search_text.MAX_QUERY_CHARS).
MAX_QUERY_CHARS = 200
# A VideoDB hit and a keyword hit this close on the same stream are the same moment.
SAME_MOMENT_MS = 3000
# A hit lands on the nearest stored moment at or before it, if one is this close.
NEAR_MS = 60_000

_KIND_FOR_SOURCE = {"transcript": "speech", "visual": "visual", "audio": "audio"}


@dataclass
class MeaningHit:
    session: CaptureSession
    stream: RTStream | None
    kind: str
    start_ms: int
    text: str
    score: float
    entry: SearchEntry | None = None  # the stored moment it landed on, if any


@dataclass
class Found:
    hits: list[MeaningHit] = field(default_factory=list)
    notice: str = ""  # what did not answer, for the page to say; "" when everything did


@dataclass
class Item:
    """One row of the merged result list."""

    session: CaptureSession
    kind: str
    kind_label: str
    start_ms: int
    snippet: SafeString | str
    url: str
    speaker: str = ""
    channel: str = ""
    by_keyword: bool = False
    by_meaning: bool = False
    score: float | None = None  # VideoDB's, to order by; not shown (see the module's note)
    entry_id: int | None = None  # the stored moment it opens, when there is one
    stream_id: int | None = None
    offset_ms: int = 0  # time into the meeting, as the history page counts it

    @property
    def at(self) -> str:
        """Time into the meeting, as the history page shows it: ``mm:ss`` or ``h:mm:ss``."""
        return record.format_offset(self.offset_ms)

    @property
    def at_iso(self) -> str:
        """The same as an ISO 8601 duration, for ``<time datetime>``."""
        hours, rest = divmod(max(self.offset_ms, 0) // 1000, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"PT{hours}H{minutes}M{seconds}S"


# --- landing VideoDB's hits on stored moments ---------------------------------------------

_LANDING_FIELDS = ("session", "stream", "kind", "start_ms", "segment", "insight", "alert")


def _entries_saying(hits: list[MeaningHit]) -> dict[tuple[int, str, str], SearchEntry]:
    """For video hits: the latest stored moment of the same session and kind saying the
    same words, by (session, kind, text). One query."""
    video = [h for h in hits if h.stream is None]
    if not video:
        return {}
    entries = (
        SearchEntry.objects.filter(
            session_id__in={h.session.pk for h in video},
            kind__in={h.kind for h in video},
            text__in={search_text.normalize(h.text) for h in video},
        )
        .only(*_LANDING_FIELDS, "text")
        .select_related("stream")
    )
    found: dict[tuple[int, str, str], SearchEntry] = {}
    for entry in entries:  # newest first (the model's ordering): keep the first seen
        found.setdefault((entry.session_id, entry.kind, entry.text), entry)
    return found


def _entries_near(hits: list[MeaningHit]) -> dict[tuple[int, str], list[SearchEntry]]:
    """The stored moments within NEAR_MS either side of any hit, by (session, kind). One
    query."""
    windows = Q()
    for hit in hits:
        window = Q(
            session_id=hit.session.pk,
            kind=hit.kind,
            start_ms__gte=hit.start_ms - NEAR_MS,
            start_ms__lte=hit.start_ms + NEAR_MS,
        )
        if hit.stream is not None:
            window &= Q(stream_id=hit.stream.pk)
        windows |= window
    near: dict[tuple[int, str], list[SearchEntry]] = defaultdict(list)
    entries = SearchEntry.objects.filter(windows).only(*_LANDING_FIELDS).select_related("stream")
    for entry in entries:
        near[(entry.session_id, entry.kind)].append(entry)
    return near


def _nearest(hit: MeaningHit, candidates: list[SearchEntry]) -> SearchEntry | None:
    """The moment at or before the hit within NEAR_MS, else the first after it within
    NEAR_MS, among ``candidates``; None when neither is that close."""
    mine = [
        e
        for e in candidates
        if (hit.stream is None or e.stream_id == hit.stream.pk)
        and abs(e.start_ms - hit.start_ms) <= NEAR_MS
    ]
    before = [e for e in mine if e.start_ms <= hit.start_ms]
    if before:
        return max(before, key=lambda e: (e.start_ms, e.pk))
    return min(
        (e for e in mine if e.start_ms > hit.start_ms), key=lambda e: e.start_ms, default=None
    )


def _landing_far_off(hit: MeaningHit) -> SearchEntry | None:
    """Nothing stored within NEAR_MS: the first moment after the hit, else the last before."""
    entries = SearchEntry.objects.filter(session_id=hit.session.pk, kind=hit.kind)
    if hit.stream is not None:
        entries = entries.filter(stream_id=hit.stream.pk)
    entries = entries.only(*_LANDING_FIELDS).select_related("stream")
    after = entries.filter(start_ms__gt=hit.start_ms).order_by("start_ms").first()
    return after or entries.filter(start_ms__lte=hit.start_ms).order_by("-start_ms").first()


def _land(hits: list[MeaningHit]) -> None:
    """Set each hit's stored moment, the line, insight or alert to open.

    A video's clock starts when VideoDB started capturing, a little before Copilot heard the
    session was active, so a video hit is first matched by its words; otherwise (and for
    stream hits, which carry VideoDB's own times) it lands on the nearest moment at or
    before it within a minute, else the nearest after. Two queries for all the hits; only a
    hit with nothing stored within a minute of it asks on its own.
    """
    if not hits:
        return
    saying = _entries_saying(hits)
    near = _entries_near(hits)
    for hit in hits:
        same_words = None
        if hit.stream is None:
            same_words = saying.get((hit.session.pk, hit.kind, search_text.normalize(hit.text)))
        hit.entry = (
            same_words
            or _nearest(hit, near.get((hit.session.pk, hit.kind), []))
            or _landing_far_off(hit)
        )


# --- asking VideoDB -------------------------------------------------------------------------


def _stream_hits(stream: RTStream, remote: list[gateway.RemoteHit]) -> list[MeaningHit]:
    return [
        MeaningHit(
            stream.session,
            stream,
            _KIND_FOR_SOURCE.get(hit.source, "speech"),
            hit.start_ms,
            hit.text,
            hit.score,
        )
        for hit in remote
    ]


def _video_hits(
    exported: dict[str, CaptureSession], remote: list[gateway.RemoteHit]
) -> list[MeaningHit]:
    hits = []
    for hit in remote:
        session = exported.get(hit.video_id)
        if session is None:  # another user's video: not ours to show
            continue
        origin = epoch_ms(session.started_at) if session.started_at else 0
        hits.append(MeaningHit(session, None, "speech", origin + hit.start_ms, hit.text, hit.score))
    return hits


def _notice(asked: int, late: int, failures: list[str]) -> str:
    """What the page says when some of VideoDB's searches did not answer in time."""
    if not late and not failures:
        return ""
    if late + len(failures) == asked:
        why = f"({failures[0]})" if failures else f"within {DEADLINE_SECONDS:g} s"
        return (
            f"VideoDB's search by meaning did not answer {why}; these are the keyword matches only."
        )
    parts = []
    if late:
        parts.append(f"{late} did not answer within {DEADLINE_SECONDS:g} s")
    if failures:
        parts.append(f"{len(failures)} failed ({failures[0]})")
    return (
        f"Search by meaning is incomplete: of VideoDB's {asked} searches, {' and '.join(parts)}. "
        "Shown is what came back in time."
    )


def held_for(user_id: int | None, link_ids: list[int]) -> int:
    """Count one search by meaning for whoever asks (a signed-in user by their account, a
    visitor by each share link they hold): 0 if within ``MEANING_SEARCH_LIMIT`` per
    ``MEANING_SEARCH_WINDOW_SECONDS``, else the seconds until they may search again."""
    names = [f"meaning:user:{user_id}"] if user_id else [f"meaning:link:{i}" for i in link_ids]
    limit, window = settings.MEANING_SEARCH_LIMIT, settings.MEANING_SEARCH_WINDOW_SECONDS
    return max((throttle.use(name, limit, window) for name in names), default=0)


def held(seconds: int) -> Found:
    """What the page shows instead of asking VideoDB, for someone over the limit."""
    limit, window = settings.MEANING_SEARCH_LIMIT, settings.MEANING_SEARCH_WINDOW_SECONDS
    return Found(
        notice=f"Search by meaning is limited to {limit} searches every "
        f"{throttle.in_words(window)}; these are the keyword matches only. "
        f"Try again in {throttle.in_words(seconds)}."
    )


def ask(text: str, session_ids: list[int] | tuple[int, ...], filters: search.Filters) -> Found:
    """Ask VideoDB about ``text`` (its first MAX_QUERY_CHARS characters) within the given
    sessions: every stream at once, and the exported videos, keeping what answers within
    DEADLINE_SECONDS. Never raises for VideoDB.
    """
    cut = ""
    if len(text) > MAX_QUERY_CHARS:
        text = text[:MAX_QUERY_CHARS]
        cut = f"Search by meaning used only the first {MAX_QUERY_CHARS} characters."
    streams = (
        RTStream.objects.filter(session_id__in=list(session_ids))
        .select_related("session")
        .order_by("-session__created_at", "session_id", "pk")
    )
    if filters.channels:
        streams = streams.filter(kind__in=filters.channels)
    streams = list(streams[:MAX_STREAMS])
    exported = {
        s.exported_video_id: s
        for s in CaptureSession.objects.filter(pk__in=list(session_ids)).exclude(
            exported_video_id=""
        )
    }
    calls = [
        partial(gateway.search_stream, s.videodb_id, text, limit=HITS_PER_STREAM) for s in streams
    ]
    if exported:
        calls.append(partial(gateway.search_videos, text, limit=VIDEO_HITS))
    answers = deadline.call_all(calls, DEADLINE_SECONDS)

    found = Found()
    failures: list[str] = []
    for n, answer in enumerate(answers):
        if answer is None:
            continue
        try:
            remote = answer.result()
        except gateway.GatewayError as exc:
            failures.append(exc.message)
            continue
        found.hits += (
            _stream_hits(streams[n], remote) if n < len(streams) else _video_hits(exported, remote)
        )
    late = answers.count(None)
    if late:
        logger.warning("%d of %d VideoDB searches did not answer in time", late, len(calls))
    found.notice = " ".join(part for part in (cut, _notice(len(calls), late, failures)) if part)
    if filters.kinds:
        found.hits = [h for h in found.hits if h.kind in filters.kinds]
    _land(found.hits)
    # Best first; of equal scores, a stream's hit (which names its speaker) before a video's.
    found.hits.sort(key=lambda h: (-h.score, h.stream is None))
    return found


def _anchor(entry: SearchEntry) -> str:
    if entry.brief_item_id is not None:  # a decision or action item: at its first moment
        return search.brief_anchor(entry.brief_item)
    if entry.kind == SearchEntry.Kind.SPEECH:
        return f"line-{entry.segment_id}"
    if entry.kind == SearchEntry.Kind.ALERT:
        return f"alert-{entry.alert_id}"
    return f"ins-{entry.insight_id}"


def keyword_item(hit: search.Hit) -> Item:
    e = hit.entry
    return Item(
        session=hit.session,
        kind=e.kind,
        kind_label=e.get_kind_display(),
        start_ms=e.start_ms,
        snippet=hit.snippet,
        url=timeline.moment_url(e.session_id, e.start_ms, _anchor(e)),
        speaker=hit.speaker,
        channel=e.get_channel_display(),
        by_keyword=True,
        entry_id=e.pk,
        stream_id=e.stream_id,
    )


def meaning_item(hit: MeaningHit, query: search_text.Query | None = None) -> Item:
    """A VideoDB hit as a row: at the stored moment it landed on, said by that moment's
    speaker (a video hit names no stream of its own: its moment's stream does)."""
    entry = hit.entry
    stream = entry.stream if entry is not None else hit.stream
    speaker = stream.speaker if stream is not None and hit.kind == SearchEntry.Kind.SPEECH else ""
    return Item(
        session=hit.session,
        kind=hit.kind,
        kind_label=dict(SearchEntry.Kind.choices).get(hit.kind, hit.kind),
        start_ms=entry.start_ms if entry else hit.start_ms,
        snippet=search_text.highlight(hit.text, query) if query else escape(hit.text),
        url=timeline.moment_url(
            hit.session.pk,
            entry.start_ms if entry else hit.start_ms,
            _anchor(entry) if entry else "",
        ),
        speaker=speaker,
        channel=stream.get_kind_display() if stream is not None else "Recording",
        by_meaning=True,
        score=hit.score,
        entry_id=entry.pk if entry else None,
        stream_id=stream.pk if stream is not None else None,
    )


def _same_moment(item: Item, hit: MeaningHit) -> bool:
    """Is ``item`` the moment ``hit`` found? The same stored moment when the hit landed on
    one; otherwise (nothing of its kind is stored) the same session and stream, within
    SAME_MOMENT_MS."""
    if hit.entry is not None:
        return item.entry_id == hit.entry.pk
    return (
        item.session.pk == hit.session.pk
        and (hit.stream is None or item.stream_id == hit.stream.pk)
        and abs(item.start_ms - hit.start_ms) <= SAME_MOMENT_MS
    )


def merge(
    keyword_hits: list[search.Hit],
    meaning_hits: list[MeaningHit],
    query: search_text.Query | None = None,
) -> list[Item]:
    """One list, each moment once: moments found both ways, then VideoDB's by score, then
    keyword hits. ``meaning_hits`` come best first (as :func:`ask` sorts them), so of two
    hits on one moment the better is kept."""
    keyword = [keyword_item(h) for h in keyword_hits]
    both: list[Item] = []
    only_meaning: list[Item] = []
    for hit in meaning_hits:
        twin = next((item for item in keyword if _same_moment(item, hit)), None)
        if twin is not None:
            if not twin.by_meaning:
                twin.by_meaning, twin.score = True, hit.score
                both.append(twin)
            continue
        if any(_same_moment(item, hit) for item in only_meaning):
            continue  # the same line found again, in the exported video or another index
        only_meaning.append(meaning_item(hit, query))
    items = both + only_meaning + [k for k in keyword if not k.by_meaning]
    origins = record.origins({item.session.pk: item.session for item in items}.values())
    for item in items:
        item.offset_ms = max(0, item.start_ms - origins[item.session.pk])
    return items


def heading(keyword_total: int, items: list[Item], *, capped: bool = False) -> str:
    """What the results say they are: keyword matches (of every page; "1,000+" when search
    stopped counting, ``capped``) and, apart, the moments only VideoDB found by meaning."""
    more = sum(1 for item in items if item.by_meaning and not item.by_keyword)

    def moments(n: int) -> str:
        if capped and n == keyword_total:
            return f"{n:,}+ moments"
        return f"{n:,} moment{'s' if n != 1 else ''}"

    if keyword_total and more:
        return f"{moments(keyword_total)} found, and {more} more by meaning"
    if keyword_total:
        return f"{moments(keyword_total)} found"
    if more:
        return f"No exact match; {moments(more)} by meaning"
    return "No moment found"
