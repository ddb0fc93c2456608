"""Showing VideoDB's repetitions once.

VideoDB repeats itself: the same audio insight comes from both audio channels for the same
window, and a screen that does not change is described again every few seconds. The stored
events stay exactly as they came; pages, search hits, exports and the brief's prompt show
each repetition once, through the groups made here:

* ``screen_spans``: consecutive near-identical descriptions of one stream's screen become a
  span ("00:10-01:40 Pricing page: …") that cites every copy;
* ``unique_insights``: the same insight, on any channel and in the windows around it,
  becomes one, citing all of its copies.

Both work on anything with ``id``, ``stream_id``, ``text``, ``start_ms`` and ``end_ms``
(stored ``Insight`` rows and the record's ``Note`` values alike) and are pure: the same items
always give the same groups, so a page, a reload, a replay and an export agree. A group is
known by its first item's id (``Group.id``): the live page's element for it, the history
page's anchor and the evidence a brief cites. ``changes`` says what storing one more item
changed, for the live page to update in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from sessions_app.history.search_text import STOP_WORDS, terms

# Two descriptions are the same when their content words (stemmed) overlap this much
# (Jaccard). High enough that "Pricing page: Starter $12" and "Pricing page: Enterprise $39"
# stay apart; low enough that a model's rewording of an unchanged screen ("Pricing page
# showing three tiers" / "The pricing page shows the three tiers") joins.
SAME_TEXT = 0.8
# An insight repeats another when it says the same within this long of one of the other's
# copies (VideoDB time). VideoDB repeats an insight in the next windows while the topic
# lasts; the same point made again much later is a new moment of the meeting, shown again.
# The bound also keeps the live page's lookup of a new insight's group a small query.
REPEAT_WITHIN_MS = 5 * 60_000


class Item(Protocol):
    id: int
    stream_id: int
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Group[T: Item]:
    """One thing shown once, standing for every copy VideoDB sent of it (first first)."""

    copies: tuple[T, ...]

    @property
    def first(self) -> T:
        return self.copies[0]

    @property
    def id(self) -> int:
        return self.copies[0].id

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(copy.id for copy in self.copies)

    @property
    def text(self) -> str:
        return self.copies[0].text

    @property
    def start_ms(self) -> int:
        return min(copy.start_ms for copy in self.copies)

    @property
    def end_ms(self) -> int:
        return max(copy.end_ms for copy in self.copies)

    @property
    def count(self) -> int:
        return len(self.copies)

    @property
    def repeated(self) -> int:
        """How many copies beyond the first."""
        return len(self.copies) - 1

    @property
    def speakers(self) -> tuple[str, ...]:
        """Whose channels reported it, each once, in the order of the streams (the same on
        every group): a record's ``Note`` names its speaker, a stored ``Insight`` has it
        through its stream."""
        names = (
            copy.speaker if hasattr(copy, "speaker") else copy.stream.speaker  # type: ignore[attr-defined]
            for copy in sorted(self.copies, key=lambda copy: copy.stream_id)
        )
        return tuple(dict.fromkeys(names))


@lru_cache(maxsize=8192)
def words(text: str) -> frozenset[str]:
    """The content words of ``text``, folded and stemmed as search stems them (cached: a
    group's first text is compared with every later item)."""
    return frozenset(word for word in terms(text).split() if word not in STOP_WORDS)


def same_text(a: str, b: str) -> bool:
    """Whether two descriptions say the same thing (see ``SAME_TEXT``)."""
    if a == b or a.strip().casefold() == b.strip().casefold():
        return True
    left, right = words(a), words(b)
    if not left or not right:
        return False
    return len(left & right) / len(left | right) >= SAME_TEXT


def _by_time[T: Item](group: Group[T]) -> tuple[int, int]:
    return group.start_ms, group.id


def screen_spans[T: Item](items: Iterable[T]) -> list[Group[T]]:
    """Consecutive near-identical descriptions of the same stream, as spans, in time order
    (each span's copies too). Descriptions of different streams never join."""
    spans: list[list[T]] = []
    open_span: dict[int, list[T]] = {}  # stream id -> its latest span
    for item in sorted(items, key=lambda i: (i.start_ms, i.id)):
        span = open_span.get(item.stream_id)
        if span is not None and same_text(span[-1].text, item.text):
            span.append(item)
            continue
        span = [item]
        spans.append(span)
        open_span[item.stream_id] = span
    return [Group(tuple(span)) for span in spans]


def unique_insights[T: Item](items: Iterable[T]) -> list[Group[T]]:
    """Each insight once, however many channels and windows repeated it, in time order.

    Items are taken in the order they were stored (by id), and each joins the earliest group
    whose first copy says the same and which has a copy within ``REPEAT_WITHIN_MS`` of it.
    So a group's first copy, and its id, never change as copies arrive (the two channels'
    copies of one window come in either order), and the live page can grow the group's
    element in place.
    """
    groups: list[list[T]] = []
    # Each group's earliest and latest start. A copy joins only within the bound of another,
    # so no gap between a group's starts exceeds it: "within the bound of a copy" is "within
    # the bound of the group's range".
    ranges: list[list[int]] = []
    for item in sorted(items, key=lambda i: i.id):
        for group, span in zip(groups, ranges, strict=True):
            near = span[0] - REPEAT_WITHIN_MS <= item.start_ms <= span[1] + REPEAT_WITHIN_MS
            if near and same_text(group[0].text, item.text):
                group.append(item)
                span[0], span[1] = min(span[0], item.start_ms), max(span[1], item.start_ms)
                break
        else:
            groups.append([item])
            ranges.append([item.start_ms, item.start_ms])
    return sorted((Group(tuple(group)) for group in groups), key=_by_time)


def grouped[T: Item](kind: str, items: Iterable[T]) -> list[Group[T]]:
    """Insights of one kind as every page shows them: ``"visual"`` descriptions as screen
    spans, ``"audio"`` insights each once."""
    return screen_spans(items) if kind == "visual" else unique_insights(items)


def group_of[T: Item](groups: Sequence[Group[T]], item_id: int) -> Group[T] | None:
    """The group that stands for the item ``item_id``, if any."""
    for group in groups:
        if item_id in group.ids:
            return group
    return None


def firsts[T: Item](groups: Iterable[Group[T]]) -> dict[int, int]:
    """Each item's id -> the id of the group that stands for it."""
    return {copy_id: group.id for group in groups for copy_id in group.ids}


@dataclass(frozen=True)
class Changes[T: Item]:
    """What a page showing ``before``'s groups must do to show ``after``'s."""

    show: list[Group[T]]  # groups that are new or different: (re)render each under its id
    gone: list[int]  # ids of groups that no longer stand for anything: remove their elements


def changes[T: Item](before: Iterable[Group[T]], after: Iterable[Group[T]]) -> Changes[T]:
    """The difference between two groupings of the same items (``after`` with more)."""
    old = {group.id: group.ids for group in before}
    new = list(after)
    show = [group for group in new if old.get(group.id) != group.ids]
    kept = {group.id for group in new}
    return Changes(show=show, gone=[group_id for group_id in old if group_id not in kept])
