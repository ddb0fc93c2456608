"""The numbered sources a prompt gives the model, and the evidence they stand for.

A prompt never hands the model raw rows: it hands numbered lines, ``[n] 03:10 Ana: …``, one
per stored moment (a final transcript line, a screen span, an insight shown once, an alert),
and the model cites the numbers. Only numbers that were sent resolve to evidence, so a model
cannot point at something that is not in the record (``answers.check``).

Every source stands for one or more stored items (a screen span for each description of an
unchanged screen); the evidence it gives is its first item, which the page and the exports
show for the whole group (``history.repeats``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sessions_app.history.record import SessionRecord, format_offset
from sessions_app.intelligence.evidence import ALERT, AUDIO, TRANSCRIPT, VISUAL

MAX_SOURCE_CHARS = 600  # one line of the prompt; longer text is cut with an ellipsis


@dataclass(frozen=True)
class Evidence:
    kind: str  # one of evidence.KINDS
    id: int

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id}


@dataclass(frozen=True)
class Source:
    number: int
    kind: str
    ids: tuple[int, ...]  # the stored items it stands for, first first
    start_ms: int
    end_ms: int
    offset_ms: int
    end_offset_ms: int
    label: str  # the speaker for a line; "screen", "insight" or "alert" otherwise
    text: str

    @property
    def evidence(self) -> Evidence:
        return Evidence(self.kind, self.ids[0])

    def line(self) -> str:
        """The prompt line: ``[n] time label: text`` (a screen span shows its range)."""
        when = format_offset(self.offset_ms)
        if self.kind == VISUAL and self.end_offset_ms - self.offset_ms >= 1000:
            when = f"{when}-{format_offset(self.end_offset_ms)}"
        text = " ".join(self.text.split())
        if len(text) > MAX_SOURCE_CHARS:
            text = text[: MAX_SOURCE_CHARS - 1].rstrip() + "…"
        return f"[{self.number}] {when} {self.label}: {text}"


@dataclass(frozen=True)
class _Moment:
    kind: str
    ids: tuple[int, ...]
    start_ms: int
    end_ms: int
    label: str
    text: str


def moments(record: SessionRecord, *, after_ms: int | None = None) -> list[_Moment]:
    """The record as the model sees it, in time order: every final line with its speaker
    (both audio channels merged), the screen as spans, each insight once, the alerts that
    fired. With ``after_ms``, only what starts after it."""
    found: list[_Moment] = [
        _Moment(TRANSCRIPT, (line.id,), line.start_ms, line.end_ms, line.speaker, line.text)
        for line in record.lines
    ]
    for span in record.screens:
        found.append(_Moment(VISUAL, span.ids, span.start_ms, span.end_ms, "screen", span.text))
    for group in record.insights:
        found.append(_Moment(AUDIO, group.ids, group.start_ms, group.end_ms, "insight", group.text))
    for flag in record.alerts:
        if flag.triggered:
            text = flag.title + (f" ({flag.text})" if flag.text else "")
            found.append(_Moment(ALERT, (flag.id,), flag.start_ms, flag.end_ms, "alert", text))
    if after_ms is not None:
        found = [moment for moment in found if moment.start_ms > after_ms]
    order = {TRANSCRIPT: 0, VISUAL: 1, AUDIO: 2, ALERT: 3}
    found.sort(key=lambda m: (m.start_ms, order[m.kind], m.ids[0]))
    return found


def number(found: Iterable[_Moment], *, origin_ms: int, first: int = 1) -> list[Source]:
    """Number ``found`` from ``first`` on."""
    return [
        Source(
            number=n,
            kind=m.kind,
            ids=m.ids,
            start_ms=m.start_ms,
            end_ms=m.end_ms,
            offset_ms=max(0, m.start_ms - origin_ms),
            end_offset_ms=max(0, m.end_ms - origin_ms),
            label=m.label,
            text=m.text,
        )
        for n, m in enumerate(found, start=first)
    ]


def render(sources: Sequence[Source]) -> str:
    return "\n".join(source.line() for source in sources)


def by_number(sources: Iterable[Source]) -> dict[int, Source]:
    return {source.number: source for source in sources}
