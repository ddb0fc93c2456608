"""Reading a generate_text prompt the only way the stand-in knows: numbered source lines.

A source is one line ``[n] <rest>``; ``<rest>`` may open with a time (``00:03:10``, ``3:10``
or a range ``00:10-01:40``) and then a speaker (``Alice:``, ``Alice Ng (mic):``) or a
lowercase kind (``screen:``, ``insight:``). A line ``Question: ...`` outside the sources is
a question about them. Everything else in the prompt is instructions the stand-in cannot
follow and ignores. Word helpers (content words, a crude stemmer) live here too, because
every part of the stand-in compares sources by their words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

_SOURCE = re.compile(r"^\s*\[(\d{1,9})\][ \t]*(.*?)\s*$")
_TIME = r"(?:\d{1,2}:)?\d{1,2}:\d{2}(?:\.\d+)?"
_LEAD_TIME = re.compile(rf"^(?P<time>{_TIME}(?:\s*[-\u2013\u2014]\s*{_TIME})?)\s+")
_SPEAKER = re.compile(
    r"^(?P<name>[A-Z][\w.'\u2019-]*(?: [A-Z0-9][\w.'\u2019-]*){0,3})(?: \([^()]{1,40}\))?:\s+(?=\S)"
)
_KIND = re.compile(r"^(?P<kind>[a-z][a-z _-]{0,29})(?: \([^()]{1,40}\))?:\s+(?=\S)")
_QUESTION = re.compile(r"^\s*question\s*:\s*(?P<q>\S.*?)\s*$", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=\S)")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Capitalised labels that name a kind of record, not a person who could own an action.
NOT_PEOPLE = frozenset(
    """screen visual audio insight insights alert alerts decision decisions action actions note
    notes summary question answer transcript system risk recap proposal update agenda mic
    system_audio display""".split()  # noqa: SIM905 -- a word list reads better as prose
)

STOP_WORDS = frozenset(
    """a about above after again against all almost already also although always am an and
    any anyone anything are around as at back be because been before being below between both
    but by can could did do does doing done down during each either else even ever every
    everyone everything few for from further get gets getting go going gone got had has have
    having he her here hers herself him himself his how however i if in into is it its itself
    just know let lets like likely maybe me might mine more most much must my myself need no
    nor not now of off often ok okay on once one only or other our ours ourselves out over own
    per perhaps please quite rather really right same say said see seem she should so some
    something still such sure than thank thanks that the their theirs them themselves then
    there these they thing things think this those though through to too two three four five
    six seven eight nine ten hundred thousand under until up upon us very was way we well were
    what when where whether which while who whom whose why will with within without would yes
    yeah yet you your yours yourself yourselves today tomorrow tonight week weeks month months
    day days next last first second time times lot lots great good fine""".split()  # noqa: SIM905 -- a word list reads better as prose
)


def stem(word: str) -> str:
    """A crude suffix stripper: enough for "decided"/"decide" or "prices"/"pricing" to meet."""
    for suffix in ("ations", "ation", "ings", "ing", "edly", "ed", "ies", "es", "ly", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def content_words(text: str) -> frozenset[str]:
    """Stems of the words that carry meaning: no stop words, contractions or single letters."""
    words = set()
    for token in tokens(text):
        token = token.removesuffix("'s")
        if "'" in token or token in STOP_WORDS or len(token) < 2:
            continue
        stemmed = stem(token)
        if stemmed not in STOP_WORDS:
            words.add(stemmed)
    return frozenset(words)


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_BREAK.split(text.strip()) if s]


@dataclass(frozen=True)
class Source:
    number: int
    position: int  # order in the prompt, which is the order the stand-in reads them in
    time: str | None
    speaker: str | None  # a person's name, when the line names one
    kind: str | None  # "screen", "insight", ... when the line is labelled with a kind
    text: str

    @cached_property
    def words(self) -> frozenset[str]:
        return content_words(self.text)

    def quoted(self) -> str:
        return f"{self.speaker}: {self.text}" if self.speaker else self.text


@dataclass(frozen=True)
class Prompt:
    sources: tuple[Source, ...]
    question: str | None
    words: int
    lines: int

    @cached_property
    def people(self) -> dict[str, str]:
        """Everyone who speaks in the sources, by lowercased first name (the possible owners)."""
        return {s.speaker.split()[0].lower(): s.speaker for s in self.sources if s.speaker}


def parse_source(number: int, position: int, rest: str) -> Source:
    time = speaker = kind = None
    if match := _LEAD_TIME.match(rest):
        time, rest = match["time"], rest[match.end() :]
    if match := _SPEAKER.match(rest):
        name = match["name"]
        if name.lower() in NOT_PEOPLE:
            kind = name.lower()
        else:
            speaker = name
        rest = rest[match.end() :]
    elif match := _KIND.match(rest):
        kind, rest = match["kind"].strip(), rest[match.end() :]
    return Source(number, position, time, speaker, kind, rest.strip())


def parse_prompt(prompt: str) -> Prompt:
    """Sources in prompt order (a repeated number keeps its first line) and the last question."""
    sources: list[Source] = []
    seen: set[int] = set()
    question = None
    lines = prompt.splitlines()
    for line in lines:
        if match := _SOURCE.match(line):
            number = int(match[1])
            if number in seen or not match[2]:
                continue
            seen.add(number)
            sources.append(parse_source(number, len(sources), match[2]))
        elif match := _QUESTION.match(line):
            question = match["q"]
    return Prompt(tuple(sources), question, len(prompt.split()), len(lines))
