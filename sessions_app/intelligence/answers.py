"""Checking what the model answered: cited numbers must have been sent, items need evidence.

The model's answer is not trusted. It must be a JSON object (the SDK hands it over parsed, or
as text that parses); each list item needs text and cites source numbers; a number that was
not sent is dropped, and an item left with no evidence is dropped. What survives is returned
with its sources, and how much was dropped, so a brief records it. A malformed answer raises
``AnswerError`` (the caller keeps what it had).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sessions_app.history import repeats
from sessions_app.intelligence.sources import Source

MAX_ITEM_CHARS = 1000
MAX_FIELD_CHARS = 100
MAX_ITEMS = 50  # per list: more than any meeting's brief needs; the rest is ignored


class AnswerError(ValueError):
    """The answer is not the JSON object asked for; the message says what is wrong."""


@dataclass(frozen=True)
class Item:
    text: str
    sources: tuple[Source, ...]  # what it cites, in number order, each once
    owner: str = ""
    due: str = ""
    status: str = "open"


@dataclass(frozen=True)
class Checked:
    lists: dict[str, list[Item]] = field(default_factory=dict)
    dropped_citations: int = 0
    dropped_items: int = 0


def as_object(output: Any) -> dict[str, Any]:
    """The answer as a JSON object, or AnswerError."""
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError as exc:
            raise AnswerError(f"the answer is not JSON ({exc})") from None
    if not isinstance(output, dict):
        raise AnswerError(f"the answer is a JSON {type(output).__name__}, not an object")
    return output


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())[:limit]


def _numbers(value: Any) -> list[int] | None:
    """Cited numbers as given: a list of integers (numbers written as digits are taken)."""
    if isinstance(value, int | float | str):
        value = [value]
    if not isinstance(value, list):
        return None
    numbers = []
    for entry in value:
        if isinstance(entry, bool):
            continue
        if isinstance(entry, float) and math.isfinite(entry) and entry.is_integer():
            entry = int(entry)
        if isinstance(entry, str) and entry.strip().lstrip("[").rstrip("]").isdigit():
            entry = int(entry.strip().lstrip("[").rstrip("]"))
        if isinstance(entry, int):
            numbers.append(entry)
    return numbers


def supports(text: str, source_text: str) -> bool:
    """Whether a cited source can support an item: it shares at least two of the item's
    content words, or half of them (a short item). A number that was sent but says nothing
    the item says is a loose citation, dropped like a number that was never sent."""
    said = repeats.words(text)
    shared = said & repeats.words(source_text)
    return len(shared) >= 2 or (bool(said) and 2 * len(shared) >= len(said))


def check_list(
    raw: Any, sent: Mapping[int, Source], *, with_action_fields: bool = False
) -> tuple[list[Item], int, int]:
    """The items of one answered list that survive the check, and the citations and items
    dropped."""
    if raw is None:
        return [], 0, 0
    if not isinstance(raw, list):
        raise AnswerError(f"expected a list of items, got a JSON {type(raw).__name__}")
    items: list[Item] = []
    dropped_citations = dropped_items = 0
    for entry in raw[:MAX_ITEMS]:
        if not isinstance(entry, dict):
            dropped_items += 1
            continue
        text = _text(entry.get("text"), MAX_ITEM_CHARS)
        cited = _numbers(entry.get("evidence", entry.get("sources")))
        if cited is None:
            cited = []
        sent_cited = sorted({n for n in cited if n in sent})
        kept = [n for n in sent_cited if text and supports(text, sent[n].text)]
        dropped_citations += len(set(cited)) - len(sent_cited)
        if text:
            dropped_citations += len(sent_cited) - len(kept)
        if not text or not kept:
            dropped_items += 1
            continue
        fields: dict[str, str] = {}
        if with_action_fields:
            status = _text(entry.get("status"), 8).lower()
            fields = {
                "owner": _text(entry.get("owner"), MAX_FIELD_CHARS),
                "due": _text(entry.get("due"), MAX_FIELD_CHARS),
                "status": "done" if status == "done" else "open",
            }
        items.append(Item(text=text, sources=tuple(sent[n] for n in kept), **fields))
    return items, dropped_citations, dropped_items


def check(output: Any, sent: Mapping[int, Source], lists: Mapping[str, bool]) -> Checked:
    """Check an answer holding the named lists (name -> whether items are action items)."""
    answer = as_object(output)
    checked: dict[str, list[Item]] = {}
    citations = items = 0
    for name, actions in lists.items():
        kept, dropped_c, dropped_i = check_list(answer.get(name), sent, with_action_fields=actions)
        checked[name] = kept
        citations += dropped_c
        items += dropped_i
    return Checked(checked, citations, items)


# --- a question's answer ----------------------------------------------------------------------

MAX_ANSWER_CHARS = 2000
# "[3]", "[3, 5]": a model's inline citations. The cited moments are shown after the answer,
# numbered afresh, so the prompt's numbers would only mislead in its text.
_INLINE_CITATION = re.compile(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]")


@dataclass(frozen=True)
class Answer:
    text: str
    sources: tuple[Source, ...]  # what it cites (only numbers that were sent), in number order
    discussed: bool  # False: the model said the sources do not answer the question
    dropped_citations: int = 0


def check_answer(output: Any, sent: Mapping[int, Source]) -> Answer:
    """Check the ``answer`` object of an answer to a question: ``{text, evidence, discussed}``.

    A cited number that was not sent is dropped. The caller decides what an answer without
    evidence is worth (nothing: it is not shown as an answer). AnswerError when there is no
    answer object at all."""
    reply = as_object(output).get("answer")
    if not isinstance(reply, dict):
        shape = "nothing" if reply is None else f"a JSON {type(reply).__name__}"
        raise AnswerError(f'the answer\'s "answer" is {shape}, not an object')
    text = _INLINE_CITATION.sub("", reply.get("text") if isinstance(reply.get("text"), str) else "")
    cited = _numbers(reply.get("evidence", reply.get("sources"))) or []
    kept = sorted({n for n in cited if n in sent})
    return Answer(
        text=_text(text, MAX_ANSWER_CHARS),
        sources=tuple(sent[n] for n in kept),
        discussed=reply.get("discussed") is not False,
        dropped_citations=len([n for n in cited if n not in sent]),
    )
