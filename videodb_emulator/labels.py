"""Ground truth of a meeting script, and scoring what a summariser found against it.

A script may label the decisions, action items and open questions its meeting contains.
Each label points at the utterances that state it by their `start` times (stable when
dialogue elsewhere is edited, and readable next to the script). Anything that reports items
with evidence times (the emulator's own stand-in, or Copilot's brief in a benchmark) can be
scored with `score`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scripts import ScriptError, Utterance

LISTS = ("decisions", "action_items", "open_questions")
_KEYS = {
    "decisions": {"text", "at"},
    "action_items": {"text", "at", "owner", "due"},
    "open_questions": {"text", "at"},
}
AT_TOLERANCE = 0.05  # seconds between a label's `at` and the utterance start it names
EVIDENCE_SLACK = 0.5  # seconds around a labelled utterance that still count as it


@dataclass(frozen=True)
class Label:
    text: str
    lines: tuple[int, ...]  # indexes into Script.utterances (sorted by start)
    spans: tuple[tuple[float, float], ...]  # (start, end) of those utterances, seconds
    owner: str | None = None
    due: str | None = None

    def covers(self, second: float, slack: float = EVIDENCE_SLACK) -> bool:
        """Whether evidence at ``second`` (from the meeting's start) is one of its lines."""
        return any(start - slack <= second <= end + slack for start, end in self.spans)


@dataclass(frozen=True)
class GroundTruth:
    decisions: tuple[Label, ...] = ()
    action_items: tuple[Label, ...] = ()
    open_questions: tuple[Label, ...] = ()

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in LISTS}


Fail = Callable[[str, str], "ScriptError"]


def _line_at(at: Any, utterances: Sequence[Utterance], where: str, fail: Fail) -> int:
    if isinstance(at, bool) or not isinstance(at, int | float):
        raise fail(where, f"'at' must list utterance start times (numbers), got {at!r}")
    hits = [i for i, u in enumerate(utterances) if abs(u.start - at) <= AT_TOLERANCE]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise fail(where, f"'at' {at} is the start of {len(hits)} utterances; it must name one")
    if not utterances:
        raise fail(where, f"'at' {at} names an utterance, but the script has none")
    near = min(utterances, key=lambda u: abs(u.start - at))
    raise fail(
        where,
        f"'at' {at} is not the start of any utterance "
        f"(nearest: {near.start} {near.speaker}: {near.text[:40]!r})",
    )


def _label(
    item: dict[str, Any], name: str, where: str, utterances: Sequence[Utterance], fail: Fail
) -> Label:
    unknown = set(item) - _KEYS[name]
    if unknown:
        allowed = ", ".join(sorted(_KEYS[name]))
        raise fail(where, f"unknown key(s): {', '.join(sorted(unknown))} (allowed: {allowed})")
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise fail(where, f"'text' must be a non-empty string, got {text!r}")
    at = item.get("at")
    if not isinstance(at, list) or not at:
        raise fail(where, "'at' is required: a non-empty list of utterance start times")
    lines = [_line_at(value, utterances, where, fail) for value in at]
    if len(set(lines)) != len(lines):
        raise fail(where, "'at' names the same utterance twice")
    optional = {}
    for key in ("owner", "due"):
        value = item.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(where, f"'{key}' must be a non-empty string, got {value!r}")
        optional[key] = value.strip() if value else None
    speakers = sorted({u.speaker for u in utterances})
    if optional["owner"] is not None and optional["owner"] not in speakers:
        raise fail(
            where, f"owner {optional['owner']!r} says nothing in the script ({', '.join(speakers)})"
        )
    ordered = tuple(sorted(lines))
    spans = tuple((utterances[i].start, utterances[i].end) for i in ordered)
    return Label(text.strip(), ordered, spans, **optional)


def parse_ground_truth(
    data: dict[str, Any], utterances: Sequence[Utterance], fail: Fail
) -> GroundTruth:
    """Labels of a script's top level; ``utterances`` sorted as the Script keeps them."""
    lists: dict[str, tuple[Label, ...]] = {}
    for name in LISTS:
        items = data.get(name, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise fail(name, "must be a list of tables/objects")
        lists[name] = tuple(
            _label(item, name, f"{name}[{i}]", utterances, fail) for i, item in enumerate(items)
        )
    return GroundTruth(**lists)


@dataclass(frozen=True)
class Score:
    labels: int
    found: int
    pairs: tuple[tuple[int, int], ...]  # (label index, found index), one-to-one

    @property
    def recall(self) -> float:
        return len(self.pairs) / self.labels if self.labels else 1.0

    @property
    def precision(self) -> float:
        return len(self.pairs) / self.found if self.found else 1.0


def score(labels: Sequence[Label], found: Sequence[Iterable[float]]) -> Score:
    """Match found items to labels one-to-one (as many pairs as possible).

    A found item is given as the times of its evidence, in seconds from the meeting's
    start; it can match a label when one of those times falls on a labelled utterance.
    An item repeating an already matched label, or stating none, counts against precision.
    Each item tries first the labels most of its evidence falls on.
    """
    fits = []
    for times in (list(t) for t in found):
        strength = {li: sum(label.covers(t) for t in times) for li, label in enumerate(labels)}
        # Most supporting evidence first, so that ties in count go to the better pairing.
        fits.append(sorted((li for li, n in strength.items() if n), key=lambda li: -strength[li]))
    owner_of: dict[int, int] = {}  # label index -> found index

    def claim(fi: int, seen: set[int]) -> bool:
        for li in fits[fi]:
            if li in seen:
                continue
            seen.add(li)
            if li not in owner_of or claim(owner_of[li], seen):
                owner_of[li] = fi
                return True
        return False

    for fi in range(len(fits)):
        claim(fi, set())
    pairs = tuple(sorted(owner_of.items()))
    return Score(len(labels), len(fits), pairs)
