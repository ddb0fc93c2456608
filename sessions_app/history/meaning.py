"""Search by meaning: ask VideoDB, map its answers to moments, merge them with ours.

VideoDB searches its own indexes of each RTStream (``rtstream.search``) and of exported
videos (collection search). Its answers name a stream or a video and a time; here they
become moments of sessions the asker may view, linked like keyword hits, and the two lists
become one: moments both found first, then VideoDB's by score, then ours, newest first.
Only the sessions in scope are asked about, never the whole collection's other users.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils.html import escape
from django.utils.safestring import SafeString

from sessions_app import gateway, history, search, search_text
from sessions_app.models import CaptureSession, RTStream, SearchEntry
from sessions_app.record import epoch_ms

logger = logging.getLogger(__name__)

# VideoDB is asked once per stream: bound the calls one search may make.
MAX_STREAMS = 12
HITS_PER_STREAM = 5
# A VideoDB hit and a keyword hit this close on the same stream are the same moment.
SAME_MOMENT_MS = 3000

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
    error: str = ""


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
    score: float | None = None

    @property
    def when(self) -> datetime:
        """When the moment happened (VideoDB's clock)."""
        return datetime.fromtimestamp(self.start_ms / 1000, tz=UTC)


def _landing(hit: MeaningHit) -> SearchEntry | None:
    """The stored moment a VideoDB hit lands on: the line, insight or alert to open.

    A video's clock starts when VideoDB started capturing, a little before Copilot heard the
    session was active, so a video hit is first matched by its text; otherwise (and for
    stream hits, which carry VideoDB's own times) the nearest moment at or before it."""
    entries = SearchEntry.objects.filter(session_id=hit.session.pk, kind=hit.kind)
    if hit.stream is not None:
        entries = entries.filter(stream_id=hit.stream.pk)
    else:
        same_text = entries.filter(text=search_text.normalize(hit.text)).first()
        if same_text is not None:
            return same_text
    before = entries.filter(start_ms__lte=hit.start_ms).order_by("-start_ms").first()
    if before is not None and hit.start_ms - before.start_ms <= 60_000:
        return before
    return entries.filter(start_ms__gt=hit.start_ms).order_by("start_ms").first() or before


def ask(text: str, session_ids: list[int] | tuple[int, ...], filters: search.Filters) -> Found:
    """Ask VideoDB about ``text`` within the given sessions. Never raises for VideoDB."""
    found = Found()
    streams = (
        RTStream.objects.filter(session_id__in=list(session_ids))
        .select_related("session")
        .order_by("-session__created_at", "session_id", "pk")
    )
    if filters.channels:
        streams = streams.filter(kind__in=filters.channels)
    try:
        for stream in streams[:MAX_STREAMS]:
            for hit in gateway.search_stream(stream.videodb_id, text, limit=HITS_PER_STREAM):
                kind = _KIND_FOR_SOURCE.get(hit.source, "speech")
                found.hits.append(
                    MeaningHit(stream.session, stream, kind, hit.start_ms, hit.text, hit.score)
                )
        exported = {
            s.exported_video_id: s
            for s in CaptureSession.objects.filter(pk__in=list(session_ids)).exclude(
                exported_video_id=""
            )
        }
        if exported:
            for hit in gateway.search_videos(text, limit=20):
                session = exported.get(hit.video_id)
                if session is None:  # another user's video: not ours to show
                    continue
                origin = epoch_ms(session.started_at) if session.started_at else 0
                found.hits.append(
                    MeaningHit(session, None, "speech", origin + hit.start_ms, hit.text, hit.score)
                )
    except gateway.GatewayError as exc:
        logger.warning("search by meaning failed: %s", exc.message)
        found.error = (
            f"VideoDB's search by meaning did not answer ({exc.message}); "
            "these are the keyword matches only."
        )
    if filters.kinds:
        found.hits = [h for h in found.hits if h.kind in filters.kinds]
    for hit in found.hits:
        hit.entry = _landing(hit)
    found.hits.sort(key=lambda h: -h.score)
    return found


def _anchor(entry: SearchEntry) -> str:
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
        url=history.moment_url(e.session_id, e.start_ms, _anchor(e)),
        speaker=hit.speaker,
        channel=e.get_channel_display(),
        by_keyword=True,
    )


def merge(
    keyword_hits: list[search.Hit],
    meaning_hits: list[MeaningHit],
    query: search_text.Query | None = None,
) -> list[Item]:
    """One list: moments found both ways, then VideoDB's by score, then keyword hits."""
    keyword = [keyword_item(h) for h in keyword_hits]
    both: list[Item] = []
    only_meaning: list[Item] = []
    for hit in meaning_hits:
        twin = next(
            (
                k
                for k in keyword
                if k.session.pk == hit.session.pk
                and abs(k.start_ms - (hit.entry.start_ms if hit.entry else hit.start_ms))
                <= SAME_MOMENT_MS
            ),
            None,
        )
        if twin is not None:
            if not twin.by_meaning:
                twin.by_meaning, twin.score = True, hit.score
                both.append(twin)
            continue
        entry = hit.entry
        only_meaning.append(
            Item(
                session=hit.session,
                kind=hit.kind,
                kind_label=dict(SearchEntry.Kind.choices).get(hit.kind, hit.kind),
                start_ms=hit.start_ms,
                snippet=search_text.highlight(hit.text, query) if query else escape(hit.text),
                url=history.moment_url(
                    hit.session.pk,
                    entry.start_ms if entry else hit.start_ms,
                    _anchor(entry) if entry else "",
                ),
                speaker=hit.stream.speaker if hit.stream and hit.kind == "speech" else "",
                channel=hit.stream.get_kind_display() if hit.stream else "Recording",
                by_meaning=True,
                score=hit.score,
            )
        )
    rest = [k for k in keyword if not k.by_meaning]
    return both + only_meaning + rest
