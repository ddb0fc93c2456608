"""One search over everything said, shown and flagged, on PostgreSQL and on SQLite.

Writing: every final transcript line, insight and alert has one SearchEntry, written by
:func:`index_segment`, :func:`index_insight` and :func:`index_alert`. Those run from the
models' save signals (sessions_app/apps.py), so whatever stores an item (the relay, its
backfill, an alert callback, the admin, a test) keeps the index in step, on both databases,
through this one code path; the database keeps its own full-text structure in step with the
row (see SearchEntry).

Reading: :func:`search` takes the sessions a user may view (sessions_app/viewers/access.py) and a
query parsed by sessions_app/history/search_text.py. The only thing that differs between databases
is the single predicate "this entry matches", given to each as a bound parameter in its own
syntax; filtering, facets, order and pages are the same ORM query on both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Count, QuerySet
from django.db.models.expressions import RawSQL

from sessions_app.history import search_text
from sessions_app.models import (
    Alert,
    CaptureSession,
    Insight,
    RTStream,
    SearchEntry,
    TranscriptSegment,
)

PAGE_SIZE = 20
FTS_TABLE = "sessions_app_searchentry_fts"


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(ZoneInfo(settings.TIME_ZONE)).date()


def _entry(item: TranscriptSegment | Insight | Alert) -> SearchEntry:
    """The entry ``item`` should have (unsaved)."""
    if isinstance(item, TranscriptSegment):
        kind, text, source = SearchEntry.Kind.SPEECH, item.text, {"segment": item}
    elif isinstance(item, Insight):
        kind = (
            SearchEntry.Kind.VISUAL if item.kind == Insight.Kind.VISUAL else SearchEntry.Kind.AUDIO
        )
        text, source = item.text, {"insight": item}
    else:
        kind, text, source = SearchEntry.Kind.ALERT, alert_text(item), {"alert": item}
    return SearchEntry(
        session_id=item.session_id,
        stream_id=item.stream_id,
        kind=kind,
        channel=item.stream.kind,
        start_ms=item.start_ms,
        end_ms=max(item.end_ms, item.start_ms),
        day=_day(item.start_ms),
        text=search_text.normalize(text),
        terms=search_text.terms(text),
        **source,
    )


def alert_text(alert: Alert) -> str:
    """What an alert is found by: its label (words split at underscores) and explanation."""
    return f"{alert.label} {alert.text}".strip()


def is_searchable(item: TranscriptSegment | Insight | Alert) -> bool:
    """Interim speech is still changing (the final replaces it) and a "cleared" alert report
    is nothing anyone looks for: neither is indexed."""
    if isinstance(item, TranscriptSegment):
        return item.is_final and bool(item.text.strip())
    if isinstance(item, Alert):
        return item.triggered
    return bool(item.text.strip())


_SOURCE_FIELD = {TranscriptSegment: "segment", Insight: "insight", Alert: "alert"}


def index(item: TranscriptSegment | Insight | Alert, *, created: bool = False) -> None:
    """Bring ``item``'s entry up to date: write it, refresh it, or remove it. One upsert, so
    two paths storing the same item at once leave one entry."""
    source = _SOURCE_FIELD[type(item)]
    if not is_searchable(item):
        # A new interim line (the relay's commonest write) cannot have an entry yet.
        if not created:
            SearchEntry.objects.filter(**{source: item}).delete()
        return
    SearchEntry.objects.bulk_create(
        [_entry(item)],
        update_conflicts=True,
        unique_fields=[source],
        update_fields=[
            "session",
            "stream",
            "channel",
            "start_ms",
            "end_ms",
            "day",
            "text",
            "terms",
        ],
    )


def entries_for(session: CaptureSession) -> list[SearchEntry]:
    """Every entry ``session`` should have, built from what is stored (for a rebuild)."""
    items: list[TranscriptSegment | Insight | Alert] = [
        *session.segments.select_related("stream"),
        *session.insights.select_related("stream"),
        *session.alerts.select_related("stream"),
    ]
    return [_entry(item) for item in items if is_searchable(item)]


def rebuild(sessions: Iterable[CaptureSession]) -> int:
    """Re-create the entries of ``sessions`` from their stored items. Returns how many."""
    total = 0
    for session in sessions:
        SearchEntry.objects.filter(session=session).delete()
        built = entries_for(session)
        SearchEntry.objects.bulk_create(built, batch_size=1000)
        total += len(built)
    return total


# --- reading --------------------------------------------------------------------------------


def matching(query: search_text.Query, session_ids: list[int]) -> RawSQL:
    """The one database-specific piece: does an entry match ``query``? (a bound parameter)"""
    # Table names are constants and the query is a bound parameter built from alphanumeric
    # tokens only (search_text.Query): nothing a user typed is spliced into SQL.
    if connection.vendor == "postgresql":
        if query.has_prefix:
            # A prefix makes the GIN index gather every word that starts so across the whole
            # corpus before it could narrow to the sessions (bench/search.py: 117 ms p50 at
            # 5 M lines); the session_id filter does that narrowing better here (50 ms).
            return RawSQL(  # noqa: S611
                f"{SearchEntry._meta.db_table}.tsv @@ to_tsquery('simple', %s)",
                [query.to_tsquery()],
                output_field=BooleanField(),
            )
        return RawSQL(  # noqa: S611
            f"{SearchEntry._meta.db_table}.tsv @@ (to_tsquery('simple', %s) && (%s)::tsquery)",
            [query.to_tsquery(), query.scope_tsquery(session_ids)],
            output_field=BooleanField(),
        )
    return RawSQL(  # noqa: S611
        f"{SearchEntry._meta.db_table}.id IN "  # noqa: S608
        f"(SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s)",
        [query.to_fts5(session_ids)],
        output_field=BooleanField(),
    )


@dataclass(frozen=True)
class Filters:
    kinds: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    session_ids: tuple[int, ...] = ()
    date_from: date | None = None
    date_to: date | None = None


@dataclass
class Facet:
    value: str
    label: str
    count: int
    selected: bool = False


@dataclass
class Hit:
    entry: SearchEntry
    snippet: str
    session: CaptureSession
    speaker: str = ""


@dataclass
class Results:
    query: search_text.Query
    hits: list[Hit] = field(default_factory=list)
    total: int = 0
    page: int = 1
    pages: int = 0
    facets: dict[str, list[Facet]] = field(default_factory=dict)

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def matches(
    query: search_text.Query, session_ids: Iterable[int], filters: Filters = Filters()
) -> QuerySet[SearchEntry]:
    """Entries of the given sessions that match ``query`` and ``filters``, newest first."""
    scope = list(session_ids)
    if filters.session_ids:
        scope = [pk for pk in scope if pk in set(filters.session_ids)]
    qs = SearchEntry.objects.filter(session_id__in=scope).filter(matching(query, scope))
    if filters.kinds:
        qs = qs.filter(kind__in=filters.kinds)
    if filters.channels:
        qs = qs.filter(channel__in=filters.channels)
    if filters.date_from:
        qs = qs.filter(day__gte=filters.date_from)
    if filters.date_to:
        qs = qs.filter(day__lte=filters.date_to)
    return qs.order_by("-start_ms", "-id")


def search(
    query: search_text.Query,
    session_ids: Iterable[int],
    filters: Filters = Filters(),
    *,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> Results:
    """One page of hits, with facet counts over all of them."""
    results = Results(query=query)
    session_ids = list(session_ids)
    if query.is_empty or not session_ids:
        return results
    qs = matches(query, session_ids, filters)
    groups = (
        qs.order_by().values_list("kind", "channel", "session_id", "day").annotate(n=Count("id"))
    )
    by_kind: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    by_session: Counter[int] = Counter()
    by_day: Counter[date] = Counter()
    for kind, channel, session_id, day, n in groups:
        by_kind[kind] += n
        by_channel[channel] += n
        by_session[session_id] += n
        by_day[day] += n
    results.total = sum(by_kind.values())
    results.pages = max(1, -(-results.total // page_size)) if results.total else 0
    results.page = min(max(1, page), max(1, results.pages))
    offset = (results.page - 1) * page_size
    entries = list(qs.select_related("stream")[offset : offset + page_size])
    sessions = CaptureSession.objects.in_bulk({e.session_id for e in entries} | set(by_session))
    results.hits = [
        Hit(
            entry=e,
            snippet=search_text.highlight(e.text, query),
            session=sessions[e.session_id],
            speaker=e.stream.speaker if e.kind == SearchEntry.Kind.SPEECH else "",
        )
        for e in entries
    ]
    kinds = dict(SearchEntry.Kind.choices)
    channels = dict(RTStream.Kind.choices)
    results.facets = {
        "kind": [
            Facet(k, kinds.get(k, k), n, k in filters.kinds) for k, n in by_kind.most_common()
        ],
        "channel": [
            Facet(c, channels.get(c, c), n, c in filters.channels)
            for c, n in by_channel.most_common()
        ],
        "session": [
            Facet(str(s), sessions[s].title, n, s in filters.session_ids)
            for s, n in by_session.most_common(10)
        ],
        "day": [
            Facet(d.isoformat(), d.isoformat(), n)
            for d, n in sorted(by_day.items(), reverse=True)[:10]
        ],
    }
    return results
