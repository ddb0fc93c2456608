"""A brief's items across refreshes: the same point keeps its row, and its place on the page.

Every refresh answers the whole brief again. Each answered item is matched to the row it
continues, so the page updates that row in place instead of adding a copy:

1. the same ``key`` (its content words, folded and stemmed, sorted: word order, case and
   inflection do not make a new item), current or not (a point that comes back revives);
2. else a current item of the same kind that says the same thing (``repeats.same_text``);
3. else a current item of the same kind citing exactly the same evidence (a rewording).

A row keeps the key it was created with. Rows the answer no longer holds stop being current
(the page removes them). A status set by hand is never overwritten. A new action item that
repeats an open one from an earlier meeting of the same series and owner ``follows`` it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db.models import Q

from sessions_app.history import repeats
from sessions_app.intelligence.answers import Checked, Item
from sessions_app.intelligence.prompts import LISTS
from sessions_app.models import Brief, BriefItem, CaptureSession

KEY_LENGTH = 64  # BriefItem.key's column
# An action item of an earlier meeting is the same task when their content words overlap
# this much (Jaccard), or repeats.same_text says so.
SAME_TASK = 0.5
FOLLOW_CANDIDATES = 500  # open actions of earlier meetings looked at, newest meetings first

A = BriefItem.Kind.ACTION


def key_for(text: str) -> str:
    """What makes two answers' items the same item: the sorted content words, folded and
    stemmed ("Jonas updates the pricing page" = "Update the pricing pages, Jonas"), cut to
    the column with a digest of the rest; text with no content word is keyed by a digest."""
    words = " ".join(sorted(repeats.words(text)))
    if not words:
        folded = " ".join(text.casefold().split())
        return "#" + hashlib.sha256(folded.encode()).hexdigest()[: KEY_LENGTH - 1]
    if len(words) <= KEY_LENGTH:
        return words
    digest = hashlib.sha256(words.encode()).hexdigest()[:16]
    return f"{words[: KEY_LENGTH - 17]}~{digest}"


@dataclass
class _Answered:
    kind: str
    position: int
    item: Item
    key: str
    evidence: list[dict[str, object]]
    row: BriefItem | None = None

    @property
    def cites(self) -> frozenset[tuple[object, object]]:
        return frozenset((e["kind"], e["id"]) for e in self.evidence)


def _cites(row: BriefItem) -> frozenset[tuple[object, object]]:
    return frozenset((e.get("kind"), e.get("id")) for e in row.evidence if isinstance(e, dict))


def apply(
    session: CaptureSession, brief: Brief, checked: Checked, next_seq: Callable[[int], int]
) -> list[BriefItem]:
    """Store ``checked`` as the session's current brief items. Returns the rows that changed
    (each with a new sequence number from ``next_seq``), for the page. Call inside the
    storing transaction, with the session's row locked."""
    rows = list(BriefItem.objects.filter(session=session))
    answered = [
        _Answered(
            kind, position, item, key_for(item.text), [s.evidence.as_json() for s in item.sources]
        )
        for name, kind in LISTS.items()
        for position, item in enumerate(checked.lists.get(name, []))
    ]
    _match(answered, rows)

    changed: list[BriefItem] = []
    created_actions: list[BriefItem] = []
    seen: set[tuple[str, str]] = set()
    for entry in answered:
        if entry.row is None:
            if (entry.kind, entry.key) in seen:
                continue  # the answer said the same thing twice
            entry.row = BriefItem(
                session=session, kind=entry.kind, key=entry.key, first_brief=brief
            )
            if entry.kind == A:
                created_actions.append(entry.row)
        seen.add((entry.kind, entry.key))
        row = entry.row
        if _update(row, entry) or row.pk is None:
            row.last_brief = brief
            row.seq = next_seq(session.pk)
            row.save()
            changed.append(row)
        else:
            BriefItem.objects.filter(pk=row.pk).update(position=row.position, last_brief=brief)
    kept = {entry.row.pk for entry in answered if entry.row is not None}
    for row in rows:
        if row.is_current and row.pk not in kept:
            row.is_current = False
            row.seq = next_seq(session.pk)
            row.save(update_fields=["is_current", "seq", "updated_at"])
            changed.append(row)
    for row in created_actions:
        earlier = follows_for(session, row)
        if earlier is not None:
            BriefItem.objects.filter(pk=row.pk).update(follows=earlier)
            row.follows = earlier
    return changed


def _match(answered: list[_Answered], rows: list[BriefItem]) -> None:
    """Give each answered item the row it continues, if any (each row at most once)."""
    by_key = {(row.kind, row.key): row for row in rows}
    taken: set[int] = set()

    def take(entry: _Answered, row: BriefItem | None) -> None:
        if row is not None and row.pk not in taken and entry.row is None:
            entry.row = row
            taken.add(row.pk)

    for entry in answered:
        take(entry, by_key.get((entry.kind, entry.key)))
    current = [row for row in rows if row.is_current]
    rules: list[Callable[[_Answered, BriefItem], bool]] = [
        lambda entry, row: repeats.same_text(entry.item.text, row.text),
        lambda entry, row: entry.kind != BriefItem.Kind.SUMMARY and entry.cites == _cites(row),
    ]
    for rule in rules:
        for entry in answered:
            if entry.row is None:
                take(
                    entry,
                    _first(
                        r
                        for r in current
                        if r.kind == entry.kind and r.pk not in taken and rule(entry, r)
                    ),
                )


def _first(rows: Iterable[BriefItem]) -> BriefItem | None:
    return next(iter(rows), None)


def _update(row: BriefItem, entry: _Answered) -> bool:
    """Copy the answer onto the row; True if anything the page shows changed."""
    item = entry.item
    row.position = entry.position  # the answer's order; the page orders by moment
    values = {
        "text": item.text,
        "evidence": entry.evidence,
        "start_ms": min(source.start_ms for source in item.sources),
        "is_current": True,
    }
    if entry.kind == A:
        values.update(owner=item.owner, due=item.due)
        if row.status_set_by_id is None:
            values["status"] = item.status
    changed = False
    for field, value in values.items():
        if getattr(row, field) != value:
            setattr(row, field, value)
            changed = True
    return changed


def _same_task(a: BriefItem, b: BriefItem) -> bool:
    if a.owner and b.owner and a.owner.casefold() != b.owner.casefold():
        return False
    if repeats.same_text(a.text, b.text):
        return True
    left, right = repeats.words(a.text), repeats.words(b.text)
    return bool(left and right) and len(left & right) / len(left | right) >= SAME_TASK


def follows_for(session: CaptureSession, row: BriefItem) -> BriefItem | None:
    """The open action item of an earlier meeting of the same series (the owner's own
    sessions only) that ``row`` repeats: the series named alike, or, both unnamed, the same
    title. The newest such meeting's first match."""
    if session.series.strip():
        series = Q(session__series=session.series)
    else:
        series = Q(session__series="", session__title__iexact=session.title)
    earlier = (
        BriefItem.objects.filter(
            series,
            kind=A,
            status=BriefItem.Status.OPEN,
            follows__isnull=True,
            is_current=True,
            session__owner_id=session.owner_id,
            session__created_at__lt=session.created_at,
        )
        .exclude(session=session)
        .order_by("-session__created_at", "position", "id")[:FOLLOW_CANDIDATES]
    )
    return _first(candidate for candidate in earlier if _same_task(row, candidate))
