"""Exported media (videos and audio assets): what each holds, read back from what its
capture session recorded, with times in seconds from the asset's start.

A video made by ``cap.export()`` covers the whole session: every stream whose channel was
started with ``store: true``, from the moment the desktop client started it. A video or an
audio asset made by ``rts.export()`` covers one stream's latest recording. Assets are plain
dicts in ``Store.videos`` / ``Store.audios``: ``{session_id, duration}`` plus, for a stream's
recording, ``rtstream_ids``, ``origin_ms``, ``name`` and ``created_at``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .state import (
    CaptureSession,
    RTStream,
    SceneIndex,
    Store,
    iso_from_ms,
    iso_now,
    new_id,
    now_ms,
)

SEGMENTERS = ("word", "sentence", "time")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class View:
    """An asset's window on its session: which streams, from when, for how long."""

    session: CaptureSession
    streams: list[RTStream]
    origin_ms: int
    length: float

    @property
    def end_ms(self) -> float:
        return self.origin_ms + self.length * 1000

    def offset(self, epoch_ms: float) -> float:
        """Seconds into the asset, clamped so a record at an edge never points outside it."""
        return round(min(max((epoch_ms - self.origin_ms) / 1000, 0.0), self.length), 3)

    def covers(self, record: dict[str, Any]) -> bool:
        return record["end"] >= self.origin_ms and record["start"] <= self.end_ms


@dataclass(frozen=True)
class Said:
    """One recorded utterance, in seconds from the asset's start."""

    start: float
    end: float
    text: str
    rtstream: RTStream


def view(store: Store, asset: dict[str, Any]) -> View:
    session = store.sessions[asset["session_id"]]
    stored = {c.channel_id for c in session.channels if c.store}
    ids = asset.get("rtstream_ids") or session.rtstream_ids
    streams = [store.rtstreams[r] for r in ids if store.rtstreams[r].name in stored]
    origin = asset.get("origin_ms") or session.started_at_ms or 0
    return View(session, streams, int(origin), float(asset["duration"]))


def title(session: CaptureSession) -> str:
    name = session.metadata.get("title")
    return name if isinstance(name, str) and name.strip() else f"Capture session {session.id}"


def name_of(store: Store, asset: dict[str, Any]) -> str:
    return asset.get("name") or title(store.sessions[asset["session_id"]])


def created_at(store: Store, asset: dict[str, Any]) -> str:
    session = store.sessions[asset["session_id"]]
    return asset.get("created_at") or iso_from_ms(
        session.stopped_at_ms or session.started_at_ms or 0
    )


def urls(base_url: str, video_id: str) -> dict[str, str]:
    """The same URLs ``cap.export()`` answers with."""
    return {
        "stream_url": f"{base_url}/_media/video/{video_id}/stream.m3u8",
        "player_url": f"{base_url}/_media/player/video/{video_id}",
    }


def export_stream(store: Store, base_url: str, rts: RTStream, name: str | None) -> dict[str, Any]:
    """``rts.export()``: the stream's latest recording as an asset; the same asset again until
    the stream records anew. A stream with video becomes a video, an audio-only one an audio
    asset (``video_id`` ``a-…``, no stream or player URL)."""
    session = store.sessions[rts.session_id]
    if rts.status != "stopped":
        raise ApiError(
            409,
            f"rtstream '{rts.id}' is still recording; stop it (rts.stop(), or stop its capture "
            "session) before exporting",
        )
    channel = next((c for c in session.channels if c.channel_id == rts.name), None)
    if channel is None or not channel.store:
        raise ApiError(
            409,
            f"rtstream '{rts.id}' was not stored (its channel was started with store: false); "
            "there is no recording to export",
        )
    origin = rts.recording_started_ms or session.started_at_ms or now_ms()
    previous = rts.export
    alive = previous is not None and (
        previous["video_id"] in store.videos or previous["video_id"] in store.audios
    )
    if previous is not None and alive and previous["origin_ms"] == origin:
        return {k: v for k, v in previous.items() if k != "origin_ms"}
    stopped = rts.stopped_at_ms or session.stopped_at_ms or now_ms()
    asset = {
        "session_id": session.id,
        "duration": round(max(stopped - origin, 0) / 1000, 3),
        "rtstream_ids": [rts.id],
        "origin_ms": origin,
        # The SDK documents this default.
        "name": name or f"{rts.name} - Recording",
        "created_at": iso_now(),
    }
    if "video" in rts.media_types:
        asset_id = new_id("m")
        store.videos[asset_id] = asset
        links: dict[str, str | None] = dict(urls(base_url, asset_id))
    else:
        asset_id = new_id("a")
        store.audios[asset_id] = asset
        links = {"stream_url": None, "player_url": None}
    result = {"video_id": asset_id, **links, "name": asset["name"], "duration": asset["duration"]}
    rts.export = {**result, "origin_ms": origin}
    return result


# -- content ---------------------------------------------------------------------


def spoken(v: View) -> list[Said]:
    """Everything said on the asset's audio streams, in order: the recording holds it whether
    or not live transcription ran at the time."""
    said = [
        Said(v.offset(entry["start"]), v.offset(entry["end"]), entry["text"], rts)
        for rts in v.streams
        for entry in rts.media_log
        if entry["kind"] == "speech" and v.covers(entry)
    ]
    said.sort(key=lambda s: (s.start, s.end))
    return said


def visual_indexes(v: View) -> list[SceneIndex]:
    return [i for rts in v.streams for i in rts.indexes.values() if i.kind == "visual"]


def scene_records(v: View, index: SceneIndex) -> list[dict[str, Any]]:
    """A visual index's records inside the asset, as ``video.get_scene_index`` returns them."""
    return [
        {
            "start": v.offset(r["start"]),
            "end": max(v.offset(r["start"]), v.offset(r["end"])),
            "description": r["text"],
            "metadata": {},
        }
        for r in index.records
        if v.covers(r)
    ]


def _words(said: list[Said]) -> list[dict[str, Any]]:
    """Word timings: each utterance's span shared evenly between its words."""
    words = []
    for s in said:
        parts = s.text.split()
        step = (s.end - s.start) / len(parts) if parts else 0.0
        for i, word in enumerate(parts):
            words.append(
                {
                    "start": round(s.start + i * step, 3),
                    "end": round(s.start + (i + 1) * step, 3),
                    "text": word,
                }
            )
    return words


def _sentences(said: list[Said]) -> list[dict[str, Any]]:
    out = []
    for s in said:
        words = _words([s])
        i = 0
        for sentence in _SENTENCE_END.split(s.text.strip()):
            n = len(sentence.split())
            if not n:
                continue
            chunk = words[i : i + n]
            out.append({"start": chunk[0]["start"], "end": chunk[-1]["end"], "text": sentence})
            i += n
    return out


def _windows(said: list[Said], width: float, length: float) -> list[dict[str, Any]]:
    buckets: dict[int, list[str]] = {}
    for word in _words(said):
        buckets.setdefault(int(word["start"] // width), []).append(word["text"])
    return [
        {
            "start": round(n * width, 3),
            "end": round(min((n + 1) * width, length), 3),
            "text": " ".join(words),
        }
        for n, words in sorted(buckets.items())
    ]


def transcript(
    v: View,
    *,
    segmenter: str = "word",
    length: float = 1,
    start: float | None = None,
    end: float | None = None,
) -> dict[str, Any]:
    """``GET video/{id}/transcription``: ``{word_timestamps: [{start, end, text}], text}``,
    segments overlapping ``[start, end]`` (seconds) only."""
    said = spoken(v)
    if segmenter == "word":
        segments = _words(said)
    elif segmenter == "sentence":
        segments = _sentences(said)
    else:
        segments = _windows(said, length, v.length)
    if start is not None:
        segments = [s for s in segments if s["end"] >= start]
    if end is not None:
        segments = [s for s in segments if s["start"] <= end]
    return {"word_timestamps": segments, "text": " ".join(s["text"] for s in segments)}
