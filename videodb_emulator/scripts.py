"""Meeting scripts: loading and validation (TOML or JSON)."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .labels import LISTS, GroundTruth, parse_ground_truth

BUNDLED_DIR = Path(__file__).parent / "scripts"
AUDIO_CHANNELS = ("mic", "system_audio")
ALL_CHANNELS = ("mic", "system_audio", "screen")
# Seconds per word when an utterance gives no end (an unhurried speaking pace).
SECONDS_PER_WORD = 0.38
_SENTENCE_END = re.compile(r"[.!?]+(\s|$)")


class ScriptError(ValueError):
    """A script file is unreadable or invalid; the message names file and field."""


@dataclass(frozen=True)
class Utterance:
    channel: str
    speaker: str
    start: float
    end: float
    text: str

    @property
    def words(self) -> list[str]:
        return self.text.split()

    @property
    def sentences(self) -> int:
        return max(1, len(_SENTENCE_END.findall(self.text)))


@dataclass(frozen=True)
class Scene:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Insight:
    start: float
    end: float
    text: str
    channel: str | None


@dataclass(frozen=True)
class AlertMoment:
    at: float
    start: float
    label: str
    keywords: tuple[str, ...]
    confidence: float
    text: str
    explanation: str
    channel: str | None


@dataclass(frozen=True)
class Script:
    name: str
    title: str
    description: str
    duration: float
    utterances: tuple[Utterance, ...]
    scenes: tuple[Scene, ...]
    insights: tuple[Insight, ...]
    alerts: tuple[AlertMoment, ...]
    ground_truth: GroundTruth = GroundTruth()  # noqa: RUF009 -- frozen, so one shared empty is safe

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "duration": self.duration,
            "utterances": len(self.utterances),
            "scenes": len(self.scenes),
            "insights": len(self.insights),
            "alerts": len(self.alerts),
            "ground_truth": self.ground_truth.counts(),
        }


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> ScriptError:
        return ScriptError(f"{self.source}: {where}: {problem}")

    def number(self, obj: dict[str, Any], key: str, where: str, default: Any = ...) -> float:
        if key not in obj:
            if default is ...:
                raise self.fail(where, f"'{key}' is required")
            return default
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail(where, f"'{key}' must be a number >= 0, got {value!r}")
        return float(value)

    def text(self, obj: dict[str, Any], key: str, where: str, default: Any = ...) -> str:
        if key not in obj:
            if default is ...:
                raise self.fail(where, f"'{key}' is required")
            return default
        value = obj[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"'{key}' must be a non-empty string, got {value!r}")
        return value.strip()

    def channel(
        self, obj: dict[str, Any], where: str, allowed: tuple[str, ...], required: bool
    ) -> str | None:
        if "channel" not in obj:
            if required:
                raise self.fail(where, f"'channel' is required (one of {', '.join(allowed)})")
            return None
        value = obj["channel"]
        if value not in allowed:
            raise self.fail(where, f"'channel' must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def table_list(self, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise self.fail(key, "must be a list of tables/objects")
        return items


_TOP_KEYS = {
    "title",
    "description",
    "duration",
    "utterances",
    "scenes",
    "insights",
    "alerts",
    *LISTS,
}


def parse_script(data: dict[str, Any], *, name: str, source: str | None = None) -> Script:
    r = _Reader(source or name)
    if not isinstance(data, dict):
        raise r.fail("top level", "must be a table/object")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise r.fail("top level", f"unknown key(s): {', '.join(sorted(unknown))}")
    title = r.text(data, "title", "top level", default=name)
    duration = r.number(data, "duration", "top level")
    if duration <= 0:
        raise r.fail("top level", "'duration' must be > 0 seconds")

    utterances = []
    for i, u in enumerate(r.table_list(data, "utterances")):
        where = f"utterances[{i}]"
        channel = r.channel(u, where, AUDIO_CHANNELS, required=True)
        text = r.text(u, "text", where)
        start = r.number(u, "start", where)
        end = r.number(u, "end", where, default=start + SECONDS_PER_WORD * len(text.split()) + 0.4)
        if end <= start:
            raise r.fail(where, f"'end' ({end}) must be after 'start' ({start})")
        if end > duration:
            raise r.fail(where, f"ends at {end}s, after the script's duration {duration}s")
        speaker = r.text(u, "speaker", where, default="Me" if channel == "mic" else "Guest")
        utterances.append(Utterance(channel, speaker, start, end, text))

    scenes = []
    for i, s in enumerate(r.table_list(data, "scenes")):
        where = f"scenes[{i}]"
        start = r.number(s, "start", where)
        end = r.number(s, "end", where, default=duration)
        if end <= start or end > duration:
            raise r.fail(where, f"needs start < end <= duration, got {start}..{end}")
        scenes.append(Scene(start, end, r.text(s, "text", where)))

    insights = []
    for i, s in enumerate(r.table_list(data, "insights")):
        where = f"insights[{i}]"
        start = r.number(s, "start", where)
        end = r.number(s, "end", where)
        if end <= start or end > duration:
            raise r.fail(where, f"needs start < end <= duration, got {start}..{end}")
        channel = r.channel(s, where, AUDIO_CHANNELS, required=False)
        insights.append(Insight(start, end, r.text(s, "text", where), channel))

    alerts = []
    for i, a in enumerate(r.table_list(data, "alerts")):
        where = f"alerts[{i}]"
        at = r.number(a, "at", where)
        if at > duration:
            raise r.fail(where, f"'at' ({at}) is after the script's duration")
        start = r.number(a, "start", where, default=max(0.0, at - 5.0))
        if start > at:
            raise r.fail(where, "'start' must not be after 'at'")
        keywords = a.get("keywords", [])
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k for k in keywords):
            raise r.fail(where, "'keywords' must be a list of non-empty strings")
        confidence = r.number(a, "confidence", where, default=0.9)
        if confidence > 1:
            raise r.fail(where, "'confidence' must be between 0 and 1")
        text = r.text(a, "text", where)
        alerts.append(
            AlertMoment(
                at=at,
                start=start,
                label=r.text(a, "label", where),
                keywords=tuple(k.lower() for k in keywords),
                confidence=confidence,
                text=text,
                explanation=r.text(a, "explanation", where, default=text),
                channel=r.channel(a, where, ALL_CHANNELS, required=False),
            )
        )

    spoken = tuple(sorted(utterances, key=lambda u: (u.start, u.channel)))
    return Script(
        name=name,
        title=title,
        description=r.text(data, "description", "top level", default=""),
        duration=duration,
        utterances=spoken,
        scenes=tuple(sorted(scenes, key=lambda s: s.start)),
        insights=tuple(sorted(insights, key=lambda s: s.start)),
        alerts=tuple(sorted(alerts, key=lambda a: a.at)),
        ground_truth=parse_ground_truth(data, spoken, r.fail),
    )


def parse_text(text: str, *, name: str, fmt: str) -> Script:
    """Parse script source text; ``fmt`` is "toml" or "json"."""
    try:
        data = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ScriptError(f"{name}: not valid {fmt.upper()}: {exc}") from None
    return parse_script(data, name=name)


def load_script(path: str | Path) -> Script:
    path = Path(path)
    fmt = {".toml": "toml", ".json": "json"}.get(path.suffix.lower())
    if fmt is None:
        raise ScriptError(f"{path}: script files must end in .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return parse_text(text, name=path.stem, fmt=fmt)
    except ScriptError as exc:
        raise ScriptError(str(exc).replace(path.stem + ":", str(path) + ":", 1)) from None


class ScriptLibrary:
    """Named scripts: the bundled ones plus any in configured directories."""

    def __init__(self, extra_dirs: tuple[str, ...] = ()) -> None:
        self.dirs = [BUNDLED_DIR, *(Path(d) for d in extra_dirs)]

    def paths(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for directory in self.dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                if path.suffix.lower() in (".toml", ".json"):
                    found[path.stem] = path
        return found

    def names(self) -> list[str]:
        return sorted(self.paths())

    def get(self, name: str) -> Script:
        path = self.paths().get(name)
        if path is None:
            raise ScriptError(f"unknown script '{name}' (known: {', '.join(self.names())})")
        return load_script(path)
