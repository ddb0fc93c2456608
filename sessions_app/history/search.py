"""One search over everything said, shown and flagged, on PostgreSQL and on SQLite.

Writing: every final transcript line, insight and alert, and every current decision and
action item of a brief, has one SearchEntry, written by :func:`index`. It runs from the
models' save signals (sessions_app/apps.py), so whatever stores an item (the relay, its
backfill, an alert callback, the brief, the admin, a test) keeps the index in step, on both
databases, through this one code path; the database keeps its own full-text structure in
step with the row (see SearchEntry). A brief's item is found at the first of its cited
moments (its entry takes that moment's stream, time and channel), and only while it is
current: one that leaves the brief leaves the index.

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

from sessions_app.history import repeats, search_text
from sessions_app.intelligence import evidence
from sessions_app.models import (
    Alert,
    BriefItem,
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


_SEARCHABLE_BRIEF_KINDS = {BriefItem.Kind.DECISION, BriefItem.Kind.ACTION}

Moment = evidence.Moment


def cited(item: BriefItem) -> list[tuple[str, int]]:
    """The (kind, id) pairs ``item`` cites, each once, in its order."""
    return evidence.pairs(item.evidence)


def brief_anchor(item: BriefItem) -> str:
    """Where a decision or action item opens on the history page: its first cited moment."""
    pairs = cited(item)
    return evidence.history_anchor(*pairs[0]) if pairs else ""


def cited_moments(items: Iterable[BriefItem]) -> dict[tuple[str, int], Moment]:
    """Every stored moment the ``items`` cite, by (evidence kind, id), with its stream: one
    query per table. A cited moment of another session is not theirs and is left out."""
    items = list(items)
    wanted: dict[type[Moment], set[int]] = {}
    for item in items:
        for kind, pk in cited(item):
            wanted.setdefault(evidence.MODELS[kind], set()).add(pk)
    sessions = {item.session_id for item in items}
    rows: dict[tuple[type[Moment], int], Moment] = {}
    for model, ids in wanted.items():
        for row in model.objects.filter(pk__in=ids, session_id__in=sessions).select_related(
            "stream"
        ):
            rows[(model, row.pk)] = row
    found: dict[tuple[str, int], Moment] = {}
    for item in items:
        for kind, pk in cited(item):
            row = rows.get((evidence.MODELS[kind], pk))
            if row is not None and row.session_id == item.session_id:
                found[(kind, pk)] = row
    return found


def first_moment(item: BriefItem, moments: dict[tuple[str, int], Moment]) -> Moment | None:
    """The first of ``item``'s cited moments that is stored: where search finds it."""
    return next((moments[c] for c in cited(item) if c in moments), None)


def brief_text(item: BriefItem) -> str:
    """What a decision or action item is found by: its text, and an action's owner and due."""
    parts = [" ".join(item.text.split())]
    if item.kind == BriefItem.Kind.ACTION:
        parts += [
            f"owner {item.owner}" if item.owner else "",
            f"due {item.due}" if item.due else "",
        ]
    return " · ".join(part for part in parts if part)


def _brief_entry(item: BriefItem, moment: Moment) -> SearchEntry:
    text = brief_text(item)
    return SearchEntry(
        session_id=item.session_id,
        stream_id=moment.stream_id,
        kind=item.kind,
        channel=moment.stream.kind,
        start_ms=moment.start_ms,
        end_ms=max(moment.end_ms, moment.start_ms),
        day=_day(moment.start_ms),
        text=search_text.normalize(text),
        terms=search_text.terms(text),
        brief_item=item,
    )


def _brief_entries(items: Iterable[BriefItem]) -> list[SearchEntry]:
    items = [item for item in items if is_searchable(item)]
    moments = cited_moments(items)
    entries = []
    for item in items:
        if (moment := first_moment(item, moments)) is not None:
            entries.append(_brief_entry(item, moment))
    return entries


def alert_text(alert: Alert) -> str:
    """What an alert is found by: its label (words split at underscores) and explanation."""
    return f"{alert.label} {alert.text}".strip()


def is_searchable(item: Moment | BriefItem) -> bool:
    """Interim speech is still changing (the final replaces it), a "cleared" alert report is
    nothing anyone looks for, and a brief's summary, open questions and the items a refresh
    dropped are not moments: none is indexed."""
    if isinstance(item, TranscriptSegment):
        return item.is_final and bool(item.text.strip())
    if isinstance(item, Alert):
        return item.triggered and item.confirmed  # a callback-only alert is not shown yet
    if isinstance(item, BriefItem):
        return item.kind in _SEARCHABLE_BRIEF_KINDS and item.is_current and bool(item.text.strip())
    return bool(item.text.strip())


_SOURCE_FIELD = {
    TranscriptSegment: "segment",
    Insight: "insight",
    Alert: "alert",
    BriefItem: "brief_item",
}


def index(item: Moment | BriefItem, *, created: bool = False) -> None:
    """Bring ``item``'s entry up to date: write it, refresh it, or remove it. One upsert, so
    two paths storing the same item at once leave one entry."""
    source = _SOURCE_FIELD[type(item)]
    entry = None
    if is_searchable(item):
        if isinstance(item, BriefItem):
            # None when none of its cited moments is stored: nowhere to find it.
            entry = next(iter(_brief_entries([item])), None)
        else:
            entry = _entry(item)
    if entry is None:
        # A new interim line (the relay's commonest write) cannot have an entry yet.
        if not created:
            SearchEntry.objects.filter(**{source: item}).delete()
        return
    SearchEntry.objects.bulk_create(
        [entry],
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
    items: list[Moment] = [
        *session.segments.select_related("stream"),
        *session.insights.select_related("stream"),
        *session.alerts.select_related("stream"),
    ]
    entries = [_entry(item) for item in items if is_searchable(item)]
    return entries + _brief_entries(session.brief_items.all())


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


_REPEATED_KINDS = (SearchEntry.Kind.VISUAL, SearchEntry.Kind.AUDIO)  # insights' entry kinds


def _repeated_copies(
    qs: QuerySet[SearchEntry], counts: Iterable[tuple[str, str, int, date, int]]
) -> list[tuple[int, str, str, int, date]]:
    """The matching entries of insights whose group another matching copy stands for:
    (entry id, kind, channel, session id, day) of each.

    Only sessions with two or more matching insights of a kind can have any, so a search
    that matches none (or one) asks nothing more; otherwise two queries, whatever the hits:
    the matching copies, and the insights of those sessions to group them.
    """
    per_session: Counter[tuple[int, str]] = Counter()
    for kind, _channel, session_id, _day, n in counts:
        if kind in _REPEATED_KINDS:
            per_session[(session_id, kind)] += n
    pairs = {pair for pair, n in per_session.items() if n > 1}
    if not pairs:
        return []
    sessions, kinds = {s for s, _ in pairs}, {k for _, k in pairs}
    matched = list(
        qs.filter(session_id__in=sessions, kind__in=kinds)
        .order_by()
        .values_list("pk", "insight_id", "kind", "channel", "session_id", "day")
    )
    stored: dict[tuple[int, str], list[Insight]] = {}
    for insight in Insight.objects.filter(session_id__in=sessions, kind__in=kinds).only(
        "id", "session_id", "stream_id", "kind", "text", "start_ms", "end_ms"
    ):
        stored.setdefault((insight.session_id, insight.kind), []).append(insight)
    place: dict[int, tuple[int, int]] = {}  # insight id -> (its group's id, its place in it)
    for (session_id, kind), insights in stored.items():
        if (session_id, kind) in pairs:
            for group in repeats.grouped(kind, insights):
                for position, copy_id in enumerate(group.ids):
                    place[copy_id] = (group.id, position)
    standing: set[int] = set()
    repeated = []
    for pk, insight_id, kind, channel, session_id, day in sorted(
        matched, key=lambda row: place.get(row[1], (row[1], 0))[1]
    ):
        group_id = place.get(insight_id, (insight_id, 0))[0]
        if group_id in standing:
            repeated.append((pk, kind, channel, session_id, day))
        else:
            standing.add(group_id)
    return repeated


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
    groups = list(
        qs.order_by().values_list("kind", "channel", "session_id", "day").annotate(n=Count("id"))
    )
    # VideoDB's repetitions are one hit: the first matching copy of each group stands for the
    # others (sessions_app/history/repeats.py). The counts are of hits as listed, not of rows:
    # a copy left out is taken off the facet it was counted in, so the total, the pages and
    # every facet add up to the list (a facet never says 22 where the list shows 8).
    repeated = _repeated_copies(qs, groups)
    if repeated:
        qs = qs.exclude(pk__in=[pk for pk, *_ in repeated])
    by_kind: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    by_session: Counter[int] = Counter()
    by_day: Counter[date] = Counter()
    left_out = [(*row[1:], -1) for row in repeated]
    for kind, channel, session_id, day, n in [*groups, *left_out]:
        by_kind[kind] += n
        by_channel[channel] += n
        by_session[session_id] += n
        by_day[day] += n
    for counter in (by_kind, by_channel, by_session, by_day):
        for key in [key for key, n in counter.items() if n <= 0]:
            del counter[key]
    results.total = sum(by_kind.values())
    results.pages = max(1, -(-results.total // page_size)) if results.total else 0
    results.page = min(max(1, page), max(1, results.pages))
    offset = (results.page - 1) * page_size
    entries = list(qs.select_related("stream", "brief_item")[offset : offset + page_size])
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
