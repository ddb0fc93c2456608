"""The stand-in for a model: a meeting brief and answers extracted from numbered sources.

It is not a model and does not read the caller's instructions. It reads the sources
(`sources.py`), classifies each sentence by phrase cues (`cues.py`) and joins sentences into
cited items with the documented rules of the README ("generate_text"). Same prompt, same
answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from .cues import Action, addressee, due_in, normalise, read_sentence, says_done
from .sources import Prompt, Source, content_words, sentences, stem

# Words that say what kind of statement it is rather than what it is about.
_TASK_NOISE = frozenset(
    stem(w)
    for w in (  # noqa: SIM905 -- a word list reads better as prose
        "send take own add make set get put do have work help start item action owner follow "
        "care monday tuesday wednesday thursday friday saturday sunday end"
    ).split()
)
_DECISION_NOISE = frozenset(stem(w) for w in ("decided", "decision", "agreed", "approved"))
_QUESTION_META = frozenset(
    stem(w) for w in ("discuss", "mention", "talk", "talked", "meeting", "said", "tell")
)
_ANSWER_OPENER = re.compile(
    r"^(?:yes|yeah|yep|no|nope|not really|sure|definitely|absolutely|of course|correct|"
    r"exactly|maybe|possibly|probably|perhaps|it depends|it's possible|i think|i believe|"
    r"we do|we don't|we did|it was|that was|about|roughly)\b"
)
ANSWER_WINDOW = 3  # later sources from other people that may answer a question
ANSWER_LOOKAHEAD = 30  # ... found among this many sources after it
MAX_ITEMS = 100  # per list; keeps a pathological prompt linear
SUMMARY_ITEMS = 5
SOURCES_PER_SUMMARY_ITEM = 8
ANSWER_SOURCES = 3
CLIP = 400
NOT_DISCUSSED = "Not discussed in the sources provided."


@dataclass
class Item:
    text: str
    words: frozenset[str]
    evidence: set[int]
    last: int  # position of the last source that added to it
    owner: str | None = None
    due: str | None = None
    status: str = "open"

    def absorb(
        self, text: str, words: frozenset[str], source: Source, action: Action | None
    ) -> None:
        self.evidence.add(source.number)
        self.last = max(self.last, source.position)
        if len(words) > len(self.words):
            self.text = text
        self.words = self.words | words
        if action is not None:
            self.owner = self.owner or action.owner
            self.due = self.due or action.due


@dataclass
class _Extraction:
    prompt: Prompt
    decisions: list[Item] = field(default_factory=list)
    actions: list[Item] = field(default_factory=list)
    asked: list[tuple[Source, str]] = field(default_factory=list)
    previous: list[Item] = field(default_factory=list)  # action items of the source before
    previous_speaker: str | None = None
    noise: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        names = set(self.prompt.people)
        self.noise = _TASK_NOISE | names | {stem(name) for name in names}

    def task_words(self, text: str) -> frozenset[str]:
        """What an action is about: no cue words, weekdays or people's names."""
        return content_words(text) - self.noise

    def read(self, source: Source) -> None:
        parts = sentences(source.text)
        stated: list[Action] = []
        handed: list[Item] = []  # earlier items this source gave to someone ("Tomas?")
        decided: list[str] = []
        questions: list[str] = []
        for i, sentence in enumerate(parts):
            reading = read_sentence(sentence, source.speaker, self.prompt.people)
            if reading.kind == "assign":
                handed += self.assign(stated, reading.assign, source)
            elif reading.kind == "action":
                for action in reading.actions:
                    if not action.committed and not self.task_words(action.task):
                        # "Omar, can you own that?": names who takes the action said before.
                        handed += self.assign(stated, action.owner, source)
                        continue
                    following = parts[i + 1] if i + 1 < len(parts) else ""
                    if action.due is None and not following.endswith("?"):
                        # "I'll take the alert. I can have that done by Wednesday."
                        action = replace(action, due=due_in(following))
                    stated.append(action)
            elif reading.kind == "decision":
                decided.append(sentence)
            elif reading.kind == "question":
                questions.append(sentence)
        touched = [self.file_action(action, source) for action in _by_owner(stated)]
        if source.kind is None:  # screen text between a request and its reply is no reply
            self.previous = handed + [item for item in touched if item is not None]
            self.previous_speaker = source.speaker
        if decided:
            self.file_decision(" ".join(decided), source)
        if questions:
            self.asked.append((source, " ".join(questions)))

    def assign(self, stated: list[Action], owner: str | None, source: Source) -> list[Item]:
        """Give the action said just before (in this source, or the speaker's previous one)
        to ``owner``; returns the earlier item so handed over, if any."""
        if owner is None:
            return []
        if stated:
            if stated[-1].owner is None:
                stated[-1] = replace(stated[-1], owner=owner)
            return []
        if source.speaker is not None and source.speaker == self.previous_speaker:
            for item in reversed(self.previous):
                if item.owner is None:
                    item.owner = owner
                    item.evidence.add(source.number)
                    item.last = max(item.last, source.position)
                    return [item]
        return []

    def file_action(self, action: Action, source: Source) -> Item | None:
        words = self.task_words(action.task)
        if action.committed and self.previous and source.speaker != self.previous_speaker:
            # A reply that takes on what the previous speaker asked for ("I'll take it").
            for item in reversed(self.previous):
                if item.owner in (None, action.owner):
                    item.absorb(action.text, words, source, action)
                    return item
        if not words:
            return None
        for item in reversed(self.actions):
            compatible = None in (item.owner, action.owner) or item.owner == action.owner
            if compatible and len(words & item.words) >= 2:
                item.absorb(action.text, words, source, action)
                return item
        if len(self.actions) >= MAX_ITEMS:
            return None
        item = Item(action.text, words, {source.number}, source.position, action.owner, action.due)
        self.actions.append(item)
        return item

    def file_decision(self, text: str, source: Source) -> None:
        words = content_words(text) - _DECISION_NOISE
        if len(words) < 2:
            return
        for item in reversed(self.decisions):
            if len(words & item.words) / len(words | item.words) >= 0.5:
                item.absorb(text, words, source, None)
                return
        if len(self.decisions) < MAX_ITEMS:
            self.decisions.append(Item(text, words, {source.number}, source.position))

    def mark_done(self) -> None:
        for source in self.prompt.sources:
            if not says_done(source.text):
                continue
            words = self.task_words(source.text)
            for item in self.actions:
                if item.last < source.position and len(words & item.words) >= 2:
                    item.status = "done"
                    item.evidence.add(source.number)

    def open_questions(self) -> list[Item]:
        sources = self.prompt.sources
        out = []
        for source, text in self.asked:
            words = content_words(text)
            if len(words) < 2 or len(out) >= MAX_ITEMS:
                continue
            target = addressee(text, self.prompt.people) or addressee(
                source.text, self.prompt.people
            )
            after = sources[source.position + 1 : source.position + 1 + ANSWER_LOOKAHEAD]
            later = [s for s in after if s.kind is None and s.speaker != source.speaker]
            later = later[:ANSWER_WINDOW]
            if not _answered(words, target, later):
                out.append(Item(text, words, {source.number}, source.position))
        return out


def _by_owner(stated: list[Action]) -> list[Action]:
    """One action per person per source: a single utterance states one commitment each."""
    merged: dict[str | None, Action] = {}
    for action in stated:
        if action.owner in merged:
            first = merged[action.owner]
            merged[action.owner] = Action(
                f"{first.text} {action.text}",
                action.owner,
                first.due or action.due,
                first.committed or action.committed,
                f"{first.task} {action.task}",
            )
        else:
            merged[action.owner] = action
    return list(merged.values())


def _answered(words: frozenset[str], target: str | None, later: list[Source]) -> bool:
    if not later:
        return False
    first = later[0]
    if target is not None and first.speaker == target:
        return True
    if _ANSWER_OPENER.match(normalise(first.text)) or words & first.words:
        return True
    return any(len(words & s.words) >= 2 for s in later[1:])


def _clip(text: str) -> str:
    return text if len(text) <= CLIP else text[: CLIP - 1].rstrip() + "…"


def _cited(item: Item, **extra: Any) -> dict[str, Any]:
    return {"text": _clip(item.text), **extra, "evidence": sorted(item.evidence)}


def summary(prompt: Prompt) -> list[dict[str, Any]]:
    """The most content-rich source of each stretch of the meeting, quoted and cited."""
    rich = [s for s in prompt.sources if len(s.words) >= 3] or list(prompt.sources)
    if not rich:
        return []
    count = min(SUMMARY_ITEMS, max(1, math.ceil(len(rich) / SOURCES_PER_SUMMARY_ITEM)))
    size = math.ceil(len(rich) / count)
    out = []
    for start in range(0, len(rich), size):
        best = max(rich[start : start + size], key=lambda s: (len(s.words), -s.position))
        out.append({"text": _clip(best.quoted()), "evidence": [best.number]})
    return out


def answer(prompt: Prompt) -> dict[str, Any] | None:
    """Best-matching sources for the prompt's ``Question:`` line, or "not discussed"."""
    if prompt.question is None:
        return None
    wanted = content_words(prompt.question) - _QUESTION_META
    needed = max(1, math.ceil(len(wanted) / 2))
    sources = prompt.sources
    freq: dict[str, int] = {}
    for source in sources:
        for word in source.words & wanted:
            freq[word] = freq.get(word, 0) + 1
    scored = []
    for source in sources:
        shared = source.words & wanted
        if wanted and len(shared) >= needed:
            weight = sum(math.log(1 + len(sources) / freq[w]) for w in shared)
            scored.append((len(shared), weight, -source.position, source))
    best = sorted(scored, key=lambda t: t[:3], reverse=True)[:ANSWER_SOURCES]
    if not best:
        return {
            "question": prompt.question,
            "text": NOT_DISCUSSED,
            "evidence": [],
            "discussed": False,
        }
    chosen = sorted((t[3] for t in best), key=lambda s: s.position)
    return {
        "question": prompt.question,
        "text": _clip(" ".join(s.quoted() for s in chosen)),
        "evidence": sorted(s.number for s in chosen),
        "discussed": True,
    }


def brief(prompt: Prompt) -> dict[str, Any]:
    """Summary, decisions, action items, open questions and answer, every item cited."""
    extraction = _Extraction(prompt)
    for source in prompt.sources:
        extraction.read(source)
    extraction.mark_done()
    return {
        "summary": summary(prompt),
        "decisions": [_cited(item) for item in extraction.decisions],
        "action_items": [
            _cited(item, owner=item.owner, due=item.due, status=item.status)
            for item in extraction.actions
        ],
        "open_questions": [_cited(item) for item in extraction.open_questions()],
        "answer": answer(prompt),
    }
