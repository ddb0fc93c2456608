"""Action items across meetings: the open ones of every session a person may view, and
marking one done (or open again).

A later meeting of the same series that raises an open action item again stores it as
following the first one (``BriefItem.follows``, set by the brief). The list shows each task
once, at its first mention, with the later mentions under it ("raised again in …"); marking
it done marks those mentions done too, since they are the same task. A mention whose first
one the viewer cannot see, or which is no longer in its brief, stands on its own.

Marking is by hand (``status_set_by``), so the brief's refreshes leave the status alone from
then on; each changed item takes a new sequence number in its session, and a session that is
still live gets the change pushed to its page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Coalesce, NullIf
from django.urls import reverse

from sessions_app.history import search
from sessions_app.history.record import epoch_ms, format_offset
from sessions_app.history.timeline import moment_url
from sessions_app.live import broadcast, ingest
from sessions_app.models import BriefItem, CaptureSession, User

# How many "raised again" generations are followed (a chain longer than any real series).
MAX_MENTION_DEPTH = 20

WHOSE = ("mine", "shared")
STATUSES = ("open", "done", "all")


@dataclass(frozen=True)
class Filters:
    whose: str = ""  # "mine", "shared", or "" for both
    owner: str = ""  # text the item's owner contains
    status: str = "open"  # "open", "done" or "all"
    series: str = ""  # a series name (a session without one is in its title's series)


def series_name(session: CaptureSession) -> str:
    """The series a session belongs to: the one its owner named, else its title."""
    return session.series or session.title


def series_names(sessions: QuerySet[CaptureSession]) -> list[str]:
    """The series of ``sessions`` that have action items, alphabetically."""
    names = (
        sessions.filter(brief_items__kind=BriefItem.Kind.ACTION)
        .annotate(name=Coalesce(NullIf("series", Value("")), "title"))
        .values_list("name", flat=True)
        .distinct()
    )
    return sorted({name for name in names if name}, key=str.casefold)


def _first_mentions(sessions: QuerySet[CaptureSession]) -> Q:
    """An item that follows nothing the list shows: the first mention of its task."""
    return (
        Q(follows__isnull=True)
        | Q(follows__is_current=False)
        | ~Q(follows__session__in=sessions.values("pk"))
    )


def open_items(
    sessions: QuerySet[CaptureSession], filters: Filters, *, user: User | None = None
) -> QuerySet[BriefItem]:
    """The action items of ``sessions`` (those the asker may view) that ``filters`` select,
    one per task (its first mention), newest meeting first. ``user``: who "mine" means
    (nobody for a visitor without an account)."""
    items = BriefItem.objects.filter(
        _first_mentions(sessions),
        kind=BriefItem.Kind.ACTION,
        is_current=True,
        session__in=sessions.values("pk"),
    )
    if filters.status in (BriefItem.Status.OPEN, BriefItem.Status.DONE):
        items = items.filter(status=filters.status)
    if filters.whose == "mine":
        items = items.filter(session__owner=user) if user is not None else items.none()
    elif filters.whose == "shared" and user is not None:
        items = items.exclude(session__owner=user)
    if owner := filters.owner.strip():
        items = items.filter(owner__icontains=owner)
    if series := filters.series.strip():
        items = items.filter(
            Q(session__series=series) | Q(session__series="", session__title=series)
        )
    return items.select_related("session", "session__owner").order_by(
        "-session__created_at", "-session_id", "position", "id"
    )


def mentions(
    firsts: Iterable[BriefItem], sessions: QuerySet[CaptureSession]
) -> dict[int, list[BriefItem]]:
    """The later mentions of each task in ``firsts`` that ``sessions`` hold, oldest meeting
    first, by the first mention's id: one query per generation."""
    found: dict[int, list[BriefItem]] = {item.pk: [] for item in firsts}
    root_of = {pk: pk for pk in found}
    frontier = list(found)
    for _ in range(MAX_MENTION_DEPTH):
        if not frontier:
            break
        later = (
            BriefItem.objects.filter(
                follows_id__in=frontier,
                kind=BriefItem.Kind.ACTION,
                is_current=True,
                session__in=sessions.values("pk"),
            )
            .select_related("session")
            .order_by("session__created_at", "id")
        )
        frontier = []
        for item in later:
            if item.pk in root_of:  # a loop in the data: each item is shown once
                continue
            root_of[item.pk] = root_of[item.follows_id]
            found[root_of[item.pk]].append(item)
            frontier.append(item.pk)
    return found


@dataclass
class Row:
    """One task as the action-items page shows it."""

    item: BriefItem
    moment_url: str  # where it was raised: the history at its first cited moment
    moment: str  # that moment as an offset into its meeting ("03:10"); "" if unknown
    raised_at: datetime  # when it was said (else when the brief found it): its age
    can_change: bool  # the asker owns its session
    mentions: list[Row] = field(default_factory=list)


def _row(item: BriefItem, user: User | None) -> Row:
    session = item.session
    url, when, raised_at = reverse("session-history", args=[session.pk]), "", item.created_at
    if item.start_ms is not None:
        raised_at = datetime.fromtimestamp(item.start_ms / 1000, tz=UTC)
        url = moment_url(session.pk, item.start_ms, search.brief_anchor(item))
        if session.started_at is not None:
            when = format_offset(item.start_ms - epoch_ms(session.started_at))
    return Row(
        item=item,
        moment_url=url,
        moment=when,
        raised_at=raised_at,
        can_change=user is not None and session.owner_id == user.pk,
    )


def rows(
    firsts: Iterable[BriefItem], sessions: QuerySet[CaptureSession], user: User | None
) -> list[Row]:
    """``firsts`` (a page of ``open_items``) with their later mentions, for the page."""
    firsts = list(firsts)
    later = mentions(firsts, sessions)
    shown = []
    for item in firsts:
        row = _row(item, user)
        row.mentions = [_row(mention, user) for mention in later[item.pk]]
        shown.append(row)
    return shown


def _chain(item: BriefItem) -> list[int]:
    """``item`` and the later mentions of its task in its owner's sessions (ids)."""
    owner_id = item.session.owner_id
    ids, frontier = [item.pk], [item.pk]
    for _ in range(MAX_MENTION_DEPTH):
        frontier = list(
            BriefItem.objects.filter(
                follows_id__in=frontier, kind=BriefItem.Kind.ACTION, session__owner_id=owner_id
            )
            .exclude(pk__in=ids)
            .values_list("pk", flat=True)
        )
        if not frontier:
            break
        ids += frontier
    return ids


def set_status(item: BriefItem, user: User, status: str) -> list[BriefItem]:
    """Mark ``item``'s task ``status`` ("open" or "done") by hand, with its later mentions
    in the same owner's meetings. Only the session's owner may (PermissionDenied otherwise).
    Returns the items that changed; the live pages of their sessions get them on commit."""
    if status not in BriefItem.Status.values:
        raise ValueError(f"unknown status {status!r}: open or done")
    if item.kind != BriefItem.Kind.ACTION:
        raise ValueError("only an action item has a status")
    if item.session.owner_id != user.pk:
        raise PermissionDenied("Only the session's owner can mark its action items.")
    changed = []
    with transaction.atomic():
        # Locked: a brief refresh storing the same rows waits, then sees status_set_by.
        chain = BriefItem.objects.select_for_update().filter(pk__in=_chain(item))
        for row in chain.select_related("session").order_by("id"):
            if row.status == status and row.status_set_by_id == user.pk:
                continue
            row.status, row.status_set_by = status, user
            row.seq = ingest.next_seq(row.session_id)
            # save(), not update(): the save signal keeps the item's search entry in step.
            row.save(update_fields=["status", "status_set_by", "seq", "updated_at"])
            changed.append(row)
        transaction.on_commit(partial(_publish, changed), robust=True)
    return changed


def _publish(items: list[BriefItem]) -> None:
    for item in items:
        if item.session.is_live:
            broadcast.publish(item.session, [broadcast.message(item, item.session)])
