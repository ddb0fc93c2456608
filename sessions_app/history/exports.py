"""A session's record as a file to download: Markdown notes, SRT or WebVTT subtitles, JSON.

Pure functions of a ``SessionRecord`` (see ``record.load``); the view checks the format
against ``FORMATS`` and sends ``render``'s result. docs/exports.md describes each format and
the JSON schema, which is versioned: fields are added, never renamed or removed, without a
new version.

VideoDB's repetitions (an insight from both channels, an unchanged screen described every
few seconds) are shown once in the files for people: Markdown lists each insight once and
the screen as spans (sessions_app/history/repeats.py). The JSON keeps every stored item and
says which group each belongs to (``same_as``). The brief and the answered questions cite
moments by the ids the same file holds (``record.Cited``).

Everything VideoDB sends (transcripts, descriptions, alert explanations), everything the
model wrote (the brief, answers) and every name a user typed is untrusted text. Each format
neutralises it in its own way: Markdown escapes what a renderer would turn into HTML, links,
images or headings; subtitle cues keep each line on one line (a line break can end a cue or
start a forged one) and WebVTT escapes its markup characters; JSON is escaped by the
encoder. (Subtitles carry only the transcript, so they have no repetitions to group.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.text import slugify

from sessions_app.history.record import (
    Cited,
    Flag,
    Line,
    Moment,
    Note,
    SessionRecord,
    format_offset,
    format_range,
)
from sessions_app.history.repeats import Group, firsts
from sessions_app.models import BriefItem, Question

SCHEMA = "copilot.session-export"
SCHEMA_VERSION = 2

# A cue whose end is not after its start would flash by unseen or be dropped by players.
MIN_CUE_MS = 1000


@dataclass(frozen=True)
class ExportFormat:
    label: str
    content_type: str
    extension: str


@dataclass(frozen=True)
class Export:
    content: str
    content_type: str
    filename: str


FORMATS: dict[str, ExportFormat] = {
    "md": ExportFormat("Markdown", "text/markdown; charset=utf-8", "md"),
    "srt": ExportFormat("SubRip (SRT)", "application/x-subrip; charset=utf-8", "srt"),
    "vtt": ExportFormat("WebVTT", "text/vtt; charset=utf-8", "vtt"),
    "json": ExportFormat("JSON", "application/json; charset=utf-8", "json"),
}


def render(
    record: SessionRecord, fmt: str, *, now: datetime | None = None, for_owner: bool = True
) -> Export:
    """``record`` as a file in format ``fmt`` (a key of ``FORMATS``; KeyError otherwise).

    ``now`` is the export time written into the JSON (the current time by default).
    ``for_owner``: False for anyone viewing through a share link, whose export carries no
    VideoDB id (``cap-…``, ``rts-…``, the exported video's): they need none, and an id is
    the handle every call against VideoDB starts from.
    """
    spec = FORMATS[fmt]
    exported_at = now or timezone.now()
    if fmt == "json":
        content = _json(record, exported_at, videodb_ids=for_owner)
    else:
        content = _RENDERERS[fmt](record, exported_at)
    return Export(
        content=content, content_type=spec.content_type, filename=filename(record, spec.extension)
    )


def filename(record: SessionRecord, extension: str) -> str:
    """``<slug of the title>-<id>.<extension>``: ASCII, so any browser saves it as named."""
    slug = slugify(record.session.title)[:80].strip("-_") or "session"
    return f"{slug}-{record.session.id}.{extension}"


# --- text helpers --------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """``text`` on a single line: every kind of line break (the ones ``str.splitlines``
    knows, which is more than any subtitle parser) becomes one space."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _clock(ms: int, separator: str) -> str:
    """``HH:MM:SS<separator>mmm``, the subtitle timestamp (hours grow past two digits)."""
    seconds, millis = divmod(max(0, ms), 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_end(line: Line) -> int:
    if line.end_offset_ms > line.offset_ms:
        return line.end_offset_ms
    return line.offset_ms + MIN_CUE_MS


def _cue_text(line: Line) -> str:
    """``Speaker: text`` on one line, never empty (an empty cue line ends the cue)."""
    speaker, text = _one_line(line.speaker), _one_line(line.text)
    return (f"{speaker}: {text}" if speaker else text).strip() or "…"


# --- Markdown ------------------------------------------------------------------------------

# Markup characters a CommonMark or GFM renderer acts on in running text: code, emphasis,
# strikethrough, links and images (brackets), tables, and the backslash itself. `<`, `>` and
# `&` become entities rather than backslash escapes because every Markdown dialect honours
# entities, while some ignore `\<`; that also stops raw HTML, autolinks and entity tricks.
# Line-start syntax (headings, quotes, lists) cannot arise: every item is printed on one
# line after a prefix of ours.
_MD_ESCAPES = {
    **{c: "\\" + c for c in "\\`*_~[]|#"},
    "<": "&lt;",
    ">": "&gt;",
    "&": "&amp;",
}
_MD_SPECIAL = re.compile("[" + re.escape("".join(_MD_ESCAPES)) + "]")


def md_escape(text: str) -> str:
    """Untrusted text as Markdown that renders as exactly that text, on one line."""
    return _MD_SPECIAL.sub(lambda m: _MD_ESCAPES[m.group()], _one_line(text))


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _md_span(span: Group[Note]) -> str:
    start = min(copy.offset_ms for copy in span.copies)
    end = max(copy.end_offset_ms for copy in span.copies)
    return f"- **[{format_range(start, end)}]** {md_escape(span.text)}"


def _md_insight(group: Group[Note]) -> str:
    start = min(copy.offset_ms for copy in group.copies)
    line = f"- **[{format_offset(start)}]** {md_escape(group.text)}"
    if group.repeated:
        who = ", ".join(md_escape(name) for name in group.speakers)
        line += f" (reported {group.count} times" + (f": {who})" if who else ")")
    return line


def _md_moments(evidence: tuple[Cited, ...]) -> str:
    """Where an item is drawn from, as offsets: `` [03:10] [04:02]`` (or nothing)."""
    return "".join(f" [{format_offset(cited.offset_ms)}]" for cited in evidence)


# The brief's lists: their Markdown headings and JSON keys (docs/exports.md).
_BRIEF_LISTS = (
    (BriefItem.Kind.SUMMARY, "Summary", "summary"),
    (BriefItem.Kind.DECISION, "Decisions", "decisions"),
    (BriefItem.Kind.ACTION, "Action items", "action_items"),
    (BriefItem.Kind.QUESTION, "Open questions", "open_questions"),
)


def _md_brief(record: SessionRecord) -> list[str]:
    out = ["## Brief", ""]
    if not record.brief:
        return [*out, "No brief was made.", ""]
    for kind, heading, _key in _BRIEF_LISTS:
        points = [point for point in record.brief if point.kind == kind]
        if not points:
            continue
        out += [f"### {heading}", ""]
        for point in points:
            line = f"- {md_escape(point.text)}"
            if kind == BriefItem.Kind.ACTION:
                details = [
                    f"owner: {md_escape(point.owner)}" if point.owner else "",
                    f"due: {md_escape(point.due)}" if point.due else "",
                    point.status,
                ]
                line += f" ({', '.join(d for d in details if d)})"
            out.append(line + _md_moments(point.evidence))
        out.append("")
    return out


def _md_questions(record: SessionRecord) -> list[str]:
    out = ["## Questions", ""]
    if not record.questions:
        return [*out, "No questions were answered.", ""]
    for asked in record.questions:
        if asked.outcome == Question.Outcome.NOT_DISCUSSED:
            answer = "Not discussed."
        else:
            answer = md_escape(asked.answer) or "No answer."
        # Two lines of one list item: the answer's line starts with our own markup.
        out.append(f"- **Q:** {md_escape(asked.question)}")
        out.append(f"  **A:** {answer}{_md_moments(asked.evidence)}")
    out.append("")
    return out


def _md_flag(flag: Flag) -> str:
    parts = [f"- **{md_escape(flag.title)}** at {format_offset(flag.offset_ms)}"]
    details = []
    if flag.confidence is not None:
        details.append(f"{round(flag.confidence * 100)}% confidence")
    if not flag.triggered:
        details.append("not triggered")
    if details:
        parts.append(f"({', '.join(details)})")
    text = md_escape(flag.text)
    return " ".join(parts) + (f": {text}" if text else "")


def _markdown(record: SessionRecord, exported_at: datetime) -> str:
    session = record.session
    started = session.started_at
    speakers = ", ".join(md_escape(s) for s in record.speakers) or "nobody"
    screens = _plural(len(record.screens), "on-screen note", "on-screen notes")
    if len(record.visual) != len(record.screens):
        screens += f" ({len(record.visual)} descriptions)"
    insights = _plural(len(record.insights), "insight", "insights")
    if len(record.audio) != len(record.insights):
        insights += f" ({len(record.audio)} reported)"
    counts = ", ".join(
        [
            _plural(len(record.lines), "transcript line", "transcript lines"),
            screens,
            insights,
            _plural(len(record.alerts), "alert", "alerts"),
        ]
    )
    out = [
        f"# {md_escape(session.title) or 'Untitled session'}",
        "",
        "- **Started:** "
        + (started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if started else "not started"),
        f"- **Duration:** {format_offset(record.duration_ms)}",
        f"- **Status:** {session.status_label}",
        f"- **Speakers:** {speakers}",
        f"- **Recorded:** {counts}",
        "",
        *_md_brief(record),
        *_md_questions(record),
        "## Transcript",
        "",
    ]
    if record.lines:
        for line in record.lines:
            # One paragraph per line: consecutive lines would merge into one paragraph.
            out.append(
                f"**[{format_offset(line.offset_ms)}] {md_escape(line.speaker)}:** "
                f"{md_escape(line.text)}"
            )
            out.append("")
    else:
        out += ["Nothing was said.", ""]
    sections: list[tuple[str, list[str], str]] = [
        ("On screen", [_md_span(s) for s in record.screens], "Nothing was described on screen."),
        ("Insights", [_md_insight(g) for g in record.insights], "No insights were recorded."),
        ("Alerts", [_md_flag(f) for f in record.alerts], "No alerts fired."),
    ]
    for heading, items, empty in sections:
        out += [f"## {heading}", "", *(items or [empty]), ""]
    return "\n".join(out).rstrip("\n") + "\n"


# --- SRT -----------------------------------------------------------------------------------

# No SRT parser reads a timing line inside a cue's text, but line-based tools look for the
# arrow anywhere; a shorter arrow keeps the meaning and leaves nothing to mistake.
_ARROW = re.compile(r"-{2,}>")


def _srt(record: SessionRecord, exported_at: datetime) -> str:
    cues = []
    for number, line in enumerate(record.lines, start=1):
        text = _ARROW.sub("->", _cue_text(line))
        timing = f"{_clock(line.offset_ms, ',')} --> {_clock(_cue_end(line), ',')}"
        cues.append(f"{number}\n{timing}\n{text}\n")
    return "\n".join(cues)


# --- WebVTT --------------------------------------------------------------------------------


def vtt_escape(text: str) -> str:
    """Cue text per the WebVTT spec: `&`, `<` and `>` as character references (so `-->`
    cannot appear either), on one line (a blank line ends the cue)."""
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(record: SessionRecord, exported_at: datetime) -> str:
    out = ["WEBVTT", ""]
    for line in record.lines:
        speaker, text = vtt_escape(line.speaker), vtt_escape(line.text)
        out.append(f"{_clock(line.offset_ms, '.')} --> {_clock(_cue_end(line), '.')}")
        out.append(f"<v {speaker}>{text}" if speaker else vtt_escape(_cue_text(line)))
        out.append("")
    return "\n".join(out)


# --- JSON ----------------------------------------------------------------------------------


# The JSON schema of each kind of item, key by key and in order (docs/exports.md): written
# out, not read from the record's dataclasses, so that a field added to the record does not
# silently change a versioned schema. Every kind ends with the same times and text.
_TIMED_TEXT = ("start_ms", "end_ms", "offset_ms", "end_offset_ms", "text")
_LINE_KEYS = ("id", "stream_id", "speaker", "channel", *_TIMED_TEXT)
_NOTE_KEYS = ("id", "kind", "stream_id", "channel", *_TIMED_TEXT)
_FLAG_KEYS = ("id", "label", "triggered", "confidence", "stream_id", "channel", *_TIMED_TEXT)


def _items_json(items: Sequence[Moment], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{key: getattr(item, key) for key in keys} for item in items]


def _notes_json(notes: Sequence[Note], groups: Sequence[Group[Note]]) -> list[dict[str, Any]]:
    """Every stored insight, each saying which group it is shown in: ``same_as`` is the
    group's first copy, or None for the first copy itself (version 2)."""
    first = firsts(groups)
    items = _items_json(notes, _NOTE_KEYS)
    for item in items:
        same_as = first.get(item["id"], item["id"])
        item["same_as"] = same_as if same_as != item["id"] else None
    return items


def _evidence_json(evidence: tuple[Cited, ...]) -> list[dict[str, Any]]:
    return [{"kind": cited.kind, "id": cited.id} for cited in evidence]


def _brief_json(record: SessionRecord) -> dict[str, list[dict[str, Any]]]:
    brief: dict[str, list[dict[str, Any]]] = {key: [] for _kind, _heading, key in _BRIEF_LISTS}
    keys = {kind: key for kind, _heading, key in _BRIEF_LISTS}
    for point in record.brief:
        item: dict[str, Any] = {"id": point.id, "text": point.text}
        if point.kind == BriefItem.Kind.ACTION:
            item.update(owner=point.owner or None, due=point.due or None, status=point.status)
        item["evidence"] = _evidence_json(point.evidence)
        brief[keys[point.kind]].append(item)
    return brief


def as_json(
    record: SessionRecord, exported_at: datetime, *, videodb_ids: bool = True
) -> dict[str, Any]:
    """The JSON export as a Python value (schema in docs/exports.md). Secrets, share
    tokens and the owner are deliberately absent; with ``videodb_ids=False`` (a share
    viewer's export) so are VideoDB's ids."""
    value = _as_json(record, exported_at)
    if not videodb_ids:
        value["session"].pop("videodb_id")
        value["session"].pop("exported_video_id")
        for stream in value["streams"]:
            stream.pop("videodb_id")
    return value


def _as_json(record: SessionRecord, exported_at: datetime) -> dict[str, Any]:
    session = record.session
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "exported_at": _utc(exported_at),
        "session": {
            "id": session.id,
            "uuid": session.uuid,
            "title": session.title,
            "status": session.status,
            "videodb_id": session.videodb_id or None,
            "created_at": _utc(session.created_at),
            "started_at": _utc(session.started_at),
            "ended_at": _utc(session.ended_at),
            "origin_ms": record.origin_ms,
            "duration_ms": record.duration_ms,
            "player_url": session.player_url or None,
            "exported_video_id": session.exported_video_id or None,
        },
        "streams": [
            {
                "id": stream.id,
                "videodb_id": stream.videodb_id,
                "name": stream.name,
                "channel": stream.kind,
                "speaker": stream.speaker,
                "media_types": list(stream.media_types),
            }
            for stream in record.streams
        ],
        "transcript": _items_json(record.lines, _LINE_KEYS),
        "visual": _notes_json(record.visual, record.screens),
        "audio": _notes_json(record.audio, record.insights),
        "alerts": _items_json(record.alerts, _FLAG_KEYS),
        "brief": _brief_json(record),
        "questions": [
            {
                "id": asked.id,
                "question": asked.question,
                "answer": asked.answer,
                "outcome": asked.outcome,
                "asked_at": _utc(asked.asked_at),
                "answered_at": _utc(asked.answered_at),
                "evidence": _evidence_json(asked.evidence),
            }
            for asked in record.questions
        ],
    }


def _json(record: SessionRecord, exported_at: datetime, *, videodb_ids: bool = True) -> str:
    value = as_json(record, exported_at, videodb_ids=videodb_ids)
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"


_RENDERERS: dict[str, Callable[[SessionRecord, datetime], str]] = {
    "md": _markdown,
    "srt": _srt,
    "vtt": _vtt,
    "json": _json,
}
