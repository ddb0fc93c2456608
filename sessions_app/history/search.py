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
query parsed by sessions_app/history/search_text.py. What differs between databases is the
predicate "this entry matches", given to each as a bound parameter in its own syntax, in two
forms: through the full-text index (:func:`matching`) and tested on a row itself
(:func:`matching_row`); filtering, order and pages are the same ORM query on both.

A search page answers with its hits first (issue 15: p95 <= 20 ms at 5 M lines, measured by
bench/search.py): the count stops at COUNT_CAP ("1,000+"), and past it the page is read in
time order, session by session, instead of sorting every match of a common word. The counts
by kind, channel, session and day read every match: :func:`facet_counts`, which the page
loads after its hits.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BooleanField, Count, Model, QuerySet
from django.db.models.expressions import Col, RawSQL

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
# Hits are counted exactly up to this many; past it the page says "1,000+" (the exact figure
# comes with the facets, loaded after the hits).
COUNT_CAP = 1000
# A query with a prefix counts to this many instead. PostgreSQL finds a prefix's matches by
# testing a user's rows one by one (matching(): its GIN index would first gather every word
# of the prefix across the corpus), so the count costs rows read, about cap / the share of
# lines that match: 14,000 rows (7 ms) for "pric*" at 5 M lines with a cap of 1,000. Both
# databases use the same caps, so a query says the same on either.
PREFIX_COUNT_CAP = 300
# Past this many sessions in scope, a page of a common word is read the plain way (every
# match, sorted) instead of session by session (_newest_by_session), and PostgreSQL counts
# with one GIN lookup instead of one per session (_first_matches_by_session): one branch per
# session.
MAX_MERGED_SESSIONS = 200
FTS_TABLE = "sessions_app_searchentry_fts"
# The longest of the FTS table's prefix indexes (migration 0002: prefix='2 3 4').
FTS_LONGEST_PREFIX = 4


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
    sql, params = _fts5_match(query, session_ids)
    return RawSQL(  # noqa: S611
        f"{SearchEntry._meta.db_table}.id IN "  # noqa: S608
        f"(SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s){sql}",
        params,
        output_field=BooleanField(),
    )


def _fts5_match(query: search_text.Query, session_ids: list[int]) -> tuple[str, list[object]]:
    """The FTS5 MATCH parameter for ``query`` and, when it looks for a prefix longer than the
    FTS table's prefix indexes, the row test that narrows it (" AND ...", its parameters).

    FTS5 reads a prefix of an indexed length as one list, stopping with LIMIT; any other
    prefix it first merges the lists of every word that starts so, across the whole corpus
    ("deploy*": 13 ms at 5 M lines, bench/search.py). Cut to the longest indexed length and
    tested on each row, it is read like a word."""
    fts = query.to_fts5(session_ids, longest_prefix=FTS_LONGEST_PREFIX)
    if not query.cuts_prefix(FTS_LONGEST_PREFIX):
        return "", [fts]
    row_sql, row_params = query.to_sqlite_row(f"{SearchEntry._meta.db_table}.terms")
    return f" AND {row_sql}", [fts, *row_params]


def matching_row(query: search_text.Query) -> RawSQL:
    """Does this row match ``query``, tested on the row itself without the full-text index:
    for rows already narrowed down some other way (one session's newest, a session's
    insights). The same answer as :func:`matching` for every row (tests check both paths)."""
    table = SearchEntry._meta.db_table
    if connection.vendor == "postgresql":
        # coalesce() hides the column from the GIN index on purpose: a plan through it would
        # gather the word's matches in the whole corpus (bench/search.py: 2.8 s for
        # "follow up", whose frequency the planner underestimates) instead of reading the
        # rows these callers have already narrowed down, newest first.
        return RawSQL(  # noqa: S611 -- a bound parameter of alphanumeric tokens
            f"coalesce({table}.tsv, ''::tsvector) @@ to_tsquery('simple', %s)",
            [query.to_tsquery()],
            output_field=BooleanField(),
        )
    sql, params = query.to_sqlite_row(f"{table}.terms")
    return RawSQL(sql, params, output_field=BooleanField())  # noqa: S611 -- bound parameters


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
    """One page of hits. ``total`` is exact up to COUNT_CAP; past it ``capped`` is set and
    ``total`` is COUNT_CAP ("1,000+"), and the number of pages is not known (``pages`` 0):
    ``has_next`` says whether a hit follows this page either way."""

    query: search_text.Query
    hits: list[Hit] = field(default_factory=list)
    total: int = 0
    capped: bool = False
    page: int = 1
    pages: int = 0
    has_next: bool = False

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def total_label(self) -> str:
        return f"{self.total:,}+" if self.capped else f"{self.total:,}"


@dataclass
class FacetCounts:
    """Every hit counted (no cap) by kind, channel, session and day: the slow part of a
    search over a common word, so the page asks for it after the hits (history_views)."""

    total: int = 0
    facets: dict[str, list[Facet]] = field(default_factory=dict)


def _narrowed(
    session_ids: list[int], filters: Filters, *, by_session: bool = True
) -> QuerySet[SearchEntry]:
    """Entries of ``session_ids`` that pass ``filters`` (all but the text); ``by_session``
    False leaves the sessions to a predicate that names them itself (matching())."""
    qs = SearchEntry.objects.all()
    if by_session:
        qs = qs.filter(session_id__in=session_ids)
    if filters.kinds:
        qs = qs.filter(kind__in=filters.kinds)
    if filters.channels:
        qs = qs.filter(channel__in=filters.channels)
    if filters.date_from:
        qs = qs.filter(day__gte=filters.date_from)
    if filters.date_to:
        qs = qs.filter(day__lte=filters.date_to)
    return qs


def _scope(session_ids: Iterable[int], filters: Filters) -> list[int]:
    scope = list(session_ids)
    if filters.session_ids:
        wanted = set(filters.session_ids)
        scope = [pk for pk in scope if pk in wanted]
    return scope


def matches(
    query: search_text.Query, session_ids: Iterable[int], filters: Filters = Filters()
) -> QuerySet[SearchEntry]:
    """Entries of the given sessions that match ``query`` and ``filters``, newest first."""
    scope = _scope(session_ids, filters)
    return _narrowed(scope, filters).filter(matching(query, scope)).order_by("-start_ms", "-id")


_REPEATED_KINDS = (SearchEntry.Kind.VISUAL, SearchEntry.Kind.AUDIO)  # insights' entry kinds
# The condition of the partial index on insight entries (migration 0008), spelled as its
# constants: SQLite uses a partial index only for a query stating its condition, and a bound
# parameter (what kind__in would send) is not that.
_INSIGHT_KINDS_SQL = RawSQL(  # noqa: S611 -- constants of this module, nothing typed
    f"{SearchEntry._meta.db_table}.kind IN ({', '.join(repr(str(k)) for k in _REPEATED_KINDS)})",
    [],
    output_field=BooleanField(),
)


def _repeated_copies(
    query: search_text.Query, scope: list[int], filters: Filters
) -> list[tuple[int, str, str, int, date]]:
    """The matching entries of insights whose group another matching copy stands for:
    (entry id, kind, channel, session id, day) of each.

    Only a session with two or more matching insights of a kind can have any. Insights are
    few beside the lines said (and an index holds just them, migration 0008), so their
    matching entries are read through that index and tested row by row: one query, however
    common the word, and a second, the insights of those sessions to group them, only when
    some session has two.
    """
    matched = list(
        _narrowed(scope, filters)
        .filter(_INSIGHT_KINDS_SQL)
        .filter(matching_row(query))
        .order_by()
        .values_list("pk", "insight_id", "kind", "channel", "session_id", "day")
    )
    per_session = Counter((session_id, kind) for _, _, kind, _, session_id, _ in matched)
    pairs = {pair for pair, n in per_session.items() if n > 1}
    if not pairs:
        return []
    matched = [row for row in matched if (row[4], row[2]) in pairs]
    sessions, kinds = {s for s, _ in pairs}, {k for _, k in pairs}
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


def _first_matches(
    query: search_text.Query, scope: list[int], filters: Filters, left_out: list[int], cap: int
) -> list[tuple[int, int]]:
    """(id, start_ms) of up to ``cap + 1`` matching entries, in no order: the full-text
    index yields them one by one and the query stops there, however many more there are.
    At most ``cap`` is all of them: the page is sorted from these (one full-text lookup
    for the count and the page); more says "past the cap"."""
    qs = _narrowed(scope, filters)
    if left_out:
        qs = qs.exclude(pk__in=left_out)
    if connection.vendor == "postgresql":
        if not query.has_prefix:
            if len(scope) <= MAX_MERGED_SESSIONS:
                return _first_matches_by_session(query, scope, filters, left_out, cap)
            # The GIN predicate names the sessions itself (matching()): "session_id IN" beside
            # it only adds a second bitmap to intersect (a prefix query's names none).
            qs = _narrowed(scope, filters, by_session=False)
            if left_out:
                qs = qs.exclude(pk__in=left_out)
        return list(
            qs.filter(matching(query, scope)).order_by().values_list("id", "start_ms")[: cap + 1]
        )
    # SQLite reads "id IN (SELECT rowid FROM fts ...)" by collecting every match first; read
    # from the FTS5 table instead (CROSS JOIN keeps it the outer loop), so LIMIT stops it.
    where, params = qs.query.get_compiler(connection=connection).compile(qs.query.where)
    table = SearchEntry._meta.db_table
    row_sql, (fts, *row_params) = _fts5_match(query, scope)
    sql = (
        f"SELECT {table}.id, {table}.start_ms FROM {FTS_TABLE} CROSS JOIN {table} "  # noqa: S608
        f"ON {table}.id = {FTS_TABLE}.rowid WHERE {FTS_TABLE} MATCH %s{row_sql} AND {where} "
        "LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [fts, *row_params, *params, cap + 1])
        return [tuple(row) for row in cursor.fetchall()]


# Where a branch of a per-session statement names its session: no session has this id.
_ANY_SESSION = -1


def _union_by_session(
    sql: str, template: Sequence[object], marker: object, values: Iterable[object]
) -> tuple[str, list[object]]:
    """``sql`` once per value, each copy with the value where ``marker`` stands among its
    parameters (``template``), joined by UNION ALL. The branch is compiled once: the ORM
    compiles slower than the database answers a branch."""
    at = list(template).index(marker)
    parts: list[str] = []
    params: list[object] = []
    for value in values:
        parts.append(f"SELECT * FROM ({sql}) AS b{len(parts)}")  # noqa: S608 -- ORM-compiled
        params.extend([*template[:at], value, *template[at + 1 :]])
    return " UNION ALL ".join(parts), params


def _first_matches_by_session(
    query: search_text.Query, scope: list[int], filters: Filters, left_out: list[int], cap: int
) -> list[tuple[int, int]]:
    """_first_matches on PostgreSQL (a query without a prefix): one GIN lookup per session,
    in one UNION ALL under the LIMIT, so the lookups stop with the session that reaches
    ``cap + 1``. A GIN lookup builds the bitmap of every match before LIMIT applies, and
    for a common word its cost is that of reading the sessions' own lists (their "_s<id>"
    lexemes are the rarer side): one lookup over every session in scope took 7 ms for
    "yeah" at 5 M lines (bench/search.py), one session's 0.7 ms."""
    branch = _narrowed([], filters, by_session=False).filter(matching(query, [_ANY_SESSION]))
    if left_out:
        branch = branch.exclude(pk__in=left_out)
    sql, template = branch.order_by().values_list("id", "start_ms").query.sql_with_params()
    union, params = _union_by_session(
        sql,
        template,
        query.scope_tsquery([_ANY_SESSION]),
        (query.scope_tsquery([session_id]) for session_id in scope),
    )
    with connection.cursor() as cursor:
        cursor.execute(union + " LIMIT %s", [*params, cap + 1])
        return [tuple(row) for row in cursor.fetchall()]


def _newest_by_session(
    query: search_text.Query,
    scope: list[int],
    filters: Filters,
    left_out: list[int],
    offset: int,
    limit: int,
) -> list[int]:
    """Ids of the page ``offset:offset + limit`` of the matches, newest first, read in time
    order: each session's entries newest first through its (session, time) index, each row
    tested by itself, the sessions merged. For a common word this reads a few rows past the
    page instead of every match (which the full-text index would hand over unordered, all
    of them to be sorted for the first 20): the page costs about the same whatever the word.
    """
    # One branch per session, the same statement but for the session (_union_by_session).
    branch = (
        _narrowed([], filters, by_session=False)
        .filter(session_id=_ANY_SESSION)
        .filter(matching_row(query))
    )
    if left_out:
        branch = branch.exclude(pk__in=left_out)
    sql, template = (
        branch.order_by("-start_ms", "-id")
        .values_list("id", "start_ms")[: offset + limit]
        .query.sql_with_params()
    )

    def newest(sessions: list[int], offset: int, limit: int) -> list[tuple[int, int]]:
        """(id, start_ms) of the page ``offset:offset + limit`` of these sessions' matches."""
        union, params = _union_by_session(sql, template, _ANY_SESSION, sessions)
        merged = union + " ORDER BY 2 DESC, 1 DESC LIMIT %s OFFSET %s"
        with connection.cursor() as cursor:
            cursor.execute(merged, [*params, limit, offset])
            return [tuple(row) for row in cursor.fetchall()]

    if connection.vendor != "postgresql":
        # SQLite runs every branch to its LIMIT before it merges them: the sessions are read
        # in turn instead, newest first, as long as one can still hold a row of the page.
        rows = _in_turn(newest, _latest_starts(scope), offset + limit)
        return [pk for pk, _ in rows[offset : offset + limit]]
    # SET LOCAL needs a transaction (search's own, _quick_plans).
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # PostgreSQL cannot estimate how many rows of a session match (a phrase: 25 times
        # too few at 5 M lines), and on a low guess it reads the whole session and sorts
        # it. Without sorts and bitmaps to choose from, each branch reads its session
        # newest first through search_session_newest_idx and stops with the page: the
        # plan this function is for, whatever the estimate. Its Merge Append reads each
        # branch only as far as the page needs.
        cursor.execute("SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off")
        return [pk for pk, _ in newest(scope, offset, limit)]


def _latest_starts(scope: list[int]) -> dict[int, int]:
    """The start of each session's newest entry (any entry: no match of it is newer), for
    the sessions in ``scope`` that have one: one index lookup each, in one statement."""
    table = SearchEntry._meta.db_table
    branch = f"SELECT %s, (SELECT max(start_ms) FROM {table} WHERE session_id = %s)"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(
            " UNION ALL ".join([branch] * len(scope)), [p for pk in scope for p in (pk, pk)]
        )
        return {pk: start for pk, start in cursor.fetchall() if start is not None}


def _in_turn(
    newest: Callable[[list[int], int, int], list[tuple[int, int]]],
    latest: dict[int, int],
    wanted: int,
) -> list[tuple[int, int]]:
    """The ``wanted`` newest matches (id, start_ms), newest first, reading the sessions of
    ``latest`` in order of their newest entry, one, then two, four... at a time
    (``newest(sessions, 0, wanted)`` reads them), and stopping at the first session whose
    newest entry is older than the ``wanted``-th match found so far: no row of it or of a
    session after it could be in the page. A user's meetings follow one another, so a page
    of a common word is usually read from the newest one or two."""
    order = sorted(latest, key=lambda pk: latest[pk], reverse=True)
    rows: list[tuple[int, int]] = []
    at, batch = 0, 1
    while at < len(order):
        if len(rows) >= wanted and latest[order[at]] < rows[wanted - 1][1]:
            break
        rows += newest(order[at : at + batch], 0, wanted)
        rows = sorted(rows, key=lambda row: (row[1], row[0]), reverse=True)[:wanted]
        at, batch = at + batch, batch * 2
    return rows


# The models a page's entries are read with, in one statement (_page_entries).
_PAGE_MODELS = (SearchEntry, RTStream, CaptureSession)


@functools.cache
def _page_sql(vendor: str) -> str:
    """_page_entries' statement for the database ``vendor`` (its quoting), up to the list
    of ids: every column of an entry, of its stream and of its session."""
    quote = connection.ops.quote_name
    entry, stream, session = (quote(model._meta.db_table) for model in _PAGE_MODELS)
    columns = ", ".join(
        f"{quote(model._meta.db_table)}.{quote(f.column)}"
        for model in _PAGE_MODELS
        for f in model._meta.concrete_fields
    )
    fields = SearchEntry._meta
    return (
        f"SELECT {columns} FROM {entry} "  # noqa: S608 -- names from the models' metadata
        f"JOIN {stream} ON {stream}.{quote(RTStream._meta.pk.column)} = "
        f"{entry}.{quote(fields.get_field('stream').column)} "
        f"JOIN {session} ON {session}.{quote(CaptureSession._meta.pk.column)} = "
        f"{entry}.{quote(fields.get_field('session').column)} "
        f"WHERE {entry}.{quote(fields.pk.column)} IN "
    )


@functools.cache
def _page_columns(vendor: str) -> tuple[tuple[list[str], list[tuple[list[Callable], Col]]], ...]:
    """Per model of _page_sql, in its order: its fields' names, and for each of its columns
    what the ORM does to the raw value on ``vendor`` (SQLite gives dates, times and UUIDs as
    text, JSON as a string...)."""
    return tuple(
        (
            [f.attname for f in model._meta.concrete_fields],
            [
                (
                    connection.ops.get_db_converters(column) + f.get_db_converters(connection),
                    column,
                )
                for f in model._meta.concrete_fields
                for column in [f.get_col(model._meta.db_table)]
            ],
        )
        for model in _PAGE_MODELS
    )


def _page_entries(ids: list[int]) -> list[SearchEntry]:
    """The entries ``ids``, in that order, with their stream, session and brief item: one
    statement, written once per process, and each stream and session built once for the
    page. At 5 M lines (bench/search.py) select_related took 4 ms for 20 hits, mostly
    building a copy of the same few sessions for each hit; three in_bulk queries took 4 ms
    for a single hit, 2.4 of it the ORM compiling them."""
    if not ids:
        return []
    sql = _page_sql(connection.vendor) + "(" + ", ".join(["%s"] * len(ids)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        rows = cursor.fetchall()
    (
        (entry_names, entry_columns),
        (stream_names, stream_columns),
        (session_names, session_columns),
    ) = _page_columns(connection.vendor)
    cut = len(entry_columns)
    end = cut + len(stream_columns)

    def built(model: type[Model], names: list[str], columns: list, values: Sequence) -> Model:
        converted = list(values)
        for n, (converters, column) in enumerate(columns):
            for convert in converters:
                converted[n] = convert(converted[n], column, connection)
        return model.from_db(connection.alias, names, converted)

    by_id: dict[int, SearchEntry] = {}
    streams: dict[int, RTStream] = {}
    sessions: dict[int, CaptureSession] = {}
    for row in rows:
        entry = built(SearchEntry, entry_names, entry_columns, row[:cut])
        if entry.stream_id not in streams:
            streams[entry.stream_id] = built(RTStream, stream_names, stream_columns, row[cut:end])
        if entry.session_id not in sessions:
            sessions[entry.session_id] = built(
                CaptureSession, session_names, session_columns, row[end:]
            )
        entry.stream, entry.session = streams[entry.stream_id], sessions[entry.session_id]
        by_id[entry.pk] = entry
    entries = [by_id[pk] for pk in ids]
    briefs = {e.brief_item_id for e in entries if e.brief_item_id is not None}
    brief_items = BriefItem.objects.in_bulk(briefs) if briefs else {}
    for e in entries:
        if e.brief_item_id is not None:
            e.brief_item = brief_items[e.brief_item_id]
    return entries


@contextmanager
def _quick_plans() -> Iterator[None]:
    """On PostgreSQL, the search's statements in one transaction without JIT or parallel
    workers: the summed cost of a UNION ALL with a branch per session passes jit_above_cost
    (30 ms compiling a merge that reads a few dozen rows, "next week" in bench/search.py at
    5 M lines), and the per-session lookups of _first_matches_by_session were handed to two
    workers (10 ms starting them for 1 ms of work)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0")
        yield


def _page_ids(
    query: search_text.Query,
    scope: list[int],
    filters: Filters,
    results: Results,
    page: int,
    page_size: int,
    count_cap: int,
) -> list[int]:
    """Count the matches up to ``count_cap`` into ``results`` (total, capped, page, pages)
    and return the ids of its page, with one more if a next page exists."""
    # VideoDB's repetitions are one hit: the first matching copy of each group stands for the
    # others (sessions_app/history/repeats.py). A copy left out is neither listed nor
    # counted, so the total and the pages add up to the list.
    left_out = [pk for pk, *_ in _repeated_copies(query, scope, filters)]
    found = _first_matches(query, scope, filters, left_out, count_cap)
    results.capped = len(found) > count_cap
    results.total = min(len(found), count_cap)
    if results.capped:
        results.page = max(1, page)
    else:
        results.pages = max(1, -(-results.total // page_size)) if results.total else 0
        results.page = min(max(1, page), max(1, results.pages))
    offset = (results.page - 1) * page_size
    if not results.capped:
        # Every match is in hand: the page is theirs, newest first (the order of matches()).
        newest = sorted(found, key=lambda row: (row[1], row[0]), reverse=True)
        return [pk for pk, _ in newest[offset : offset + page_size + 1]]
    if len(scope) <= MAX_MERGED_SESSIONS:
        # Many matches: read them in time order instead of all of them (_newest_by_session);
        # one more than the page says whether a next page exists.
        return _newest_by_session(query, scope, filters, left_out, offset, page_size + 1)
    qs = matches(query, scope, filters)
    if left_out:
        qs = qs.exclude(pk__in=left_out)
    return list(qs.values_list("pk", flat=True)[offset : offset + page_size + 1])


def search(
    query: search_text.Query,
    session_ids: Iterable[int],
    filters: Filters = Filters(),
    *,
    page: int = 1,
    page_size: int | None = None,
    count_cap: int | None = None,
) -> Results:
    """One page of hits, newest first, and how many there are up to ``count_cap`` (defaults:
    PAGE_SIZE, and COUNT_CAP or for a query with a prefix PREFIX_COUNT_CAP; the facets, with
    the exact count, are :func:`facet_counts`, asked for apart)."""
    page_size = PAGE_SIZE if page_size is None else page_size
    if count_cap is None:
        count_cap = PREFIX_COUNT_CAP if query.has_prefix else COUNT_CAP
    results = Results(query=query)
    scope = _scope(session_ids, filters)
    if query.is_empty or not scope:
        return results
    with _quick_plans():
        ids = _page_ids(query, scope, filters, results, page, page_size, count_cap)
    results.has_next = len(ids) > page_size
    entries = _page_entries(ids[:page_size])
    results.hits = [
        Hit(
            entry=e,
            snippet=search_text.highlight(e.text, query),
            session=e.session,
            speaker=e.stream.speaker if e.kind == SearchEntry.Kind.SPEECH else "",
        )
        for e in entries
    ]
    return results


def facet_counts(
    query: search_text.Query, session_ids: Iterable[int], filters: Filters = Filters()
) -> FacetCounts:
    """Every hit counted by kind, channel, session and day (the ten biggest sessions, the
    ten latest days), each repeated insight once, as :func:`search` lists them."""
    counts = FacetCounts()
    scope = _scope(session_ids, filters)
    if query.is_empty or not scope:
        return counts
    groups = list(
        matches(query, scope, filters)
        .order_by()
        .values_list("kind", "channel", "session_id", "day")
        .annotate(n=Count("id"))
    )
    # A copy left out of the list is taken off the facet it was counted in, so every facet
    # adds up to the list (a facet never says 22 where the list shows 8).
    left_out = [(*row[1:], -1) for row in _repeated_copies(query, scope, filters)]
    by_kind: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    by_session: Counter[int] = Counter()
    by_day: Counter[date] = Counter()
    for kind, channel, session_id, day, n in [*groups, *left_out]:
        by_kind[kind] += n
        by_channel[channel] += n
        by_session[session_id] += n
        by_day[day] += n
    for counter in (by_kind, by_channel, by_session, by_day):
        for key in [key for key, n in counter.items() if n <= 0]:
            del counter[key]
    counts.total = sum(by_kind.values())
    biggest = by_session.most_common(10)
    titles = dict(
        CaptureSession.objects.filter(pk__in=[s for s, _ in biggest]).values_list("pk", "title")
    )
    kinds = dict(SearchEntry.Kind.choices)
    channels = dict(RTStream.Kind.choices)
    counts.facets = {
        "kind": [
            Facet(k, kinds.get(k, k), n, k in filters.kinds) for k, n in by_kind.most_common()
        ],
        "channel": [
            Facet(c, channels.get(c, c), n, c in filters.channels)
            for c, n in by_channel.most_common()
        ],
        "session": [
            Facet(str(s), titles.get(s, ""), n, s in filters.session_ids) for s, n in biggest
        ],
        "day": [
            Facet(d.isoformat(), d.isoformat(), n)
            for d, n in sorted(by_day.items(), reverse=True)[:10]
        ],
    }
    return counts
