"""What one sentence of a source says: a decision, an action (with owner and due), a question.

Phrase lists, not understanding: these are the documented cues of the emulator's stand-in
for `generate_text` (see the README). Everything here works on one sentence at a time; the
stand-in (`standin.py`) joins sentences into items across sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
)
_COUNT = r"(?:a|an|one|two|three|four|five|six|\d+)"
DUE = re.compile(
    rf"""\b(?:
        (?:by\s+)?(?:the\s+)?end\s+of\s+(?:the\s+)?(?:day|week|month|quarter|year|sprint)
      | (?:by\s+)?(?:eod|eow)
      | (?:(?:by|on|before|until|starting|from)\s+)?(?:(?:next|this|coming)\s+)?
        (?:{_WEEKDAYS})(?:\s+(?:morning|afternoon|evening))?
      | (?:(?:by|on|before)\s+)?(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?
      | (?:(?:by|on|before)\s+)?(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})
      | (?:(?:by|on|before)\s+)?\d{{4}}-\d{{2}}-\d{{2}}
      | (?:(?:by|before)\s+)?(?:today|tonight|tomorrow)(?:\s+(?:morning|afternoon|evening))?
      | (?:(?:by|before)\s+)?(?:next|this)\s+(?:week|month|quarter|sprint)
      | within\s+(?:the|{_COUNT})\s+(?:hours?|days?|weeks?)
      | in\s+{_COUNT}\s+(?:days?|weeks?|months?)
      | (?:right\s+)?after\s+(?:this|the)\s+(?:call|meeting)
    )\b""",
    re.X | re.I,
)
_DUE_LEAD = re.compile(r"^(?:by|on|before|until|starting|from)\s+", re.I)

_DECISION = re.compile(
    r"""\b(?:
        we(?:'ve|\s+have)?\s+decided | decided\s+to | it's\s+decided | the\s+decision\s+is
      | decision\s*: | let's\s+(?:go\s+with|make|mark|do|keep|stick\s+with|ship|lock)
      | we'll\s+(?:go\s+with|ship|stick\s+with) | (?:we're\s+)?going\s+with
      | agreed | we\s+agree | approved | (?:is|are|as|stays?)\s+committed | committed\s*:
      | signs?\s+off | signed\s+off | settled\s+on | lock\s+(?:it|that)\s+in
    )""",
    re.X,
)
_NAME = r"(?P<name>[a-z][\w'-]*)"
_ITEM_LABEL = re.compile(
    r"\b(?:action\s+item|to-?do)(?:\s+(?:one|two|three|four|five|six|\d+))?"
    rf"(?:\s+for\s+{_NAME})?\s*:\s*"
)
_ITEM_LIST = re.compile(r"\b(?:action\s+items|actions|next\s+steps|to-?dos)\s*:\s*")
_COMMIT = re.compile(
    r"\b(?:i'll|i\s+will|i'm\s+going\s+to|i\s+am\s+going\s+to|will\s+do)\b"
    r"(?!\s+(?:be|mostly|just|probably|need|try|have)\b)"
)
_LEAD = r"^(?:(?:so|and|okay|ok|great|good|perfect|right|then|also),?\s+)?"
_REQUEST_NAMED = re.compile(
    rf"{_LEAD}{_NAME},\s+(?:(?:can|could|would|will)\s+you|please|you'll|i\s+need\s+you\s+to)\b"
)
_REQUEST_TRAILING = re.compile(rf"\b(?:can|could|would)\s+you\b.*,\s*{_NAME}\?$")
_ADDRESS_ONLY = re.compile(rf"^{_NAME}\?$")
_OWNER_IS = re.compile(rf"\bowner\s+is\s+{_NAME}")
_OWNS = re.compile(rf"\b{_NAME}\s+(?:owns|will\s+own|is\s+the\s+owner)\b")
_NAMED_SUBJECT = re.compile(rf"{_LEAD}{_NAME}\s+(?:will|is\s+going\s+to|to)\s+[a-z]")
_SUBJECT_VERB = re.compile(rf"^(?:and\s+)?{_NAME}\s+[a-z]+s\b")
_REQUEST = re.compile(r"\b(?:please|follow\s+up\s+(?:with|on)|take\s+care\s+of|make\s+sure)\b")
_ADDRESSEE = re.compile(rf"{_LEAD}{_NAME},\s")
_DONE = re.compile(
    r"\b(?:(?:i've|we've|i\s+have|we\s+have|has|have|is|are|was|were|it's|that's)\s+"
    r"(?:already\s+|now\s+|just\s+)?(?:done|finished|completed|sent|shipped|merged|live)|"
    r"already\s+(?:sent|done|shipped|did)|took\s+care\s+of|wrapped\s+up)\b"
)
# A cue right after one of these is negated ("not committed") or hypothetical/past
# ("once we decided", "until it is done"), so it states nothing.
_BLOCKERS = frozenset({"not", "never", "no", "once", "when", "if", "after", "before", "until"})


@dataclass(frozen=True)
class Action:
    text: str
    owner: str | None
    due: str | None
    committed: bool  # the speaker took it on ("I'll ..."): it may answer a request before it
    focus: str = ""  # the words that say what is to be done (the text from the cue on)

    @property
    def task(self) -> str:
        return self.focus or self.text


@dataclass(frozen=True)
class Reading:
    """What a sentence states. ``assign`` names who takes the action said just before."""

    kind: str | None  # "action" | "assign" | "decision" | "question" | None
    actions: tuple[Action, ...] = ()
    assign: str | None = None


def normalise(text: str) -> str:
    return text.lower().replace("\u2019", "'")


def due_in(text: str) -> str | None:
    match = DUE.search(text)
    return _DUE_LEAD.sub("", match[0]) if match else None


def _blocked(lowered: str, start: int) -> bool:
    before = lowered[:start].split()[-3:]
    return any(w.strip(",") in _BLOCKERS or w.endswith("n't") for w in before)


def _cue(pattern: re.Pattern[str], lowered: str) -> re.Match[str] | None:
    for match in pattern.finditer(lowered):
        if not _blocked(lowered, match.start()):
            return match
    return None


def says_done(text: str) -> bool:
    """Whether a source reports something finished ("the deck is already sent")."""
    lowered = normalise(text).rstrip()
    return not lowered.endswith("?") and _cue(_DONE, lowered) is not None


def addressee(sentence: str, people: dict[str, str]) -> str | None:
    """The person a sentence opens by addressing ("Ravi, do we have ...")."""
    match = _ADDRESSEE.match(normalise(sentence))
    return people.get(match["name"]) if match else None


def _person(name: str | None, people: dict[str, str]) -> str | None:
    return people.get(name) if name else None


def _list_actions(
    rest: str, offset: int, sentence: str, speaker: str | None, people: dict[str, str]
) -> tuple[Action, ...]:
    """ "Actions: Jonas writes the plan by Friday, Lena sets up the sync, and I draft the note"."""
    out = []
    start = offset
    for part in re.split(r"(,\s*(?:and\s+)?|;\s*|\s+and\s+(?=[a-z]+\s+[a-z]+s\b))", rest):
        if not part.strip() or re.fullmatch(r",\s*(?:and\s+)?|;\s*|\s+and\s+", part):
            start += len(part)
            continue
        original = sentence[start : start + len(part)].strip(" .")
        start += len(part)
        first = part.split()[0]
        owner = speaker if first == "i" else people.get(first)
        out.append(Action(original, owner, due_in(original), committed=False))
    return tuple(out)


def read_sentence(sentence: str, speaker: str | None, people: dict[str, str]) -> Reading:
    """Classify one sentence; ``speaker`` is the source's person (None for screen text etc.)."""
    lowered = normalise(sentence).strip()
    is_question = lowered.endswith("?")
    if (match := _ADDRESS_ONLY.match(lowered)) and (owner := people.get(match["name"])):
        return Reading("assign", assign=owner)
    request = _REQUEST_NAMED.match(lowered) or _REQUEST_TRAILING.search(lowered)
    if request and (owner := people.get(request["name"])):
        return Reading("action", (Action(sentence, owner, due_in(sentence), committed=False),))
    if is_question:
        return Reading("question")
    if match := _ITEM_LIST.search(lowered):
        rest = lowered[match.end() :]
        listed = _list_actions(rest, match.end(), sentence, speaker, people)
        if listed:
            return Reading("action", listed)
    if match := _ITEM_LABEL.search(lowered):
        owner = _person(match["name"], people)
        return Reading("action", (Action(sentence, owner, due_in(sentence), committed=False),))
    owner_match = _OWNER_IS.search(lowered) or _OWNS.search(lowered)
    if owner_match and (owner := people.get(owner_match["name"])):
        return Reading("action", (Action(sentence, owner, due_in(sentence), committed=False),))
    if commit := _cue(_COMMIT, lowered):
        focus = sentence[commit.start() :]
        return Reading("action", (Action(sentence, speaker, due_in(sentence), True, focus),))
    named = _NAMED_SUBJECT.match(lowered) or (DUE.search(lowered) and _SUBJECT_VERB.match(lowered))
    if named and (owner := people.get(named["name"])):
        return Reading("action", (Action(sentence, owner, due_in(sentence), committed=False),))
    if _cue(_REQUEST, lowered):
        return Reading("action", (Action(sentence, None, due_in(sentence), committed=False),))
    if _cue(_DECISION, lowered):
        return Reading("decision")
    return Reading(None)
