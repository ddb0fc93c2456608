"""Keyword scoring used by every search the emulator answers (documented in the README; not
semantic), and the records an exported video is searched over."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .state import CaptureSession, Store

_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are for in is it of on or the to was we with what".split()  # noqa: SIM905
)


def terms(text: str) -> list[str]:
    tokens = _TOKEN.findall(text.lower())
    kept = [t for t in tokens if t not in _STOP]
    return kept or tokens


def score(query: str, text: str) -> float:
    """Share of distinct query terms found in the text (prefix match); 1.0 for the whole phrase."""
    q = list(dict.fromkeys(terms(query)))
    if not q:
        return 0.0
    lowered = text.lower()
    if query.strip().lower() in lowered:
        return 1.0
    doc = set(_TOKEN.findall(lowered))
    hits = sum(1 for t in q if t in doc or any(d.startswith(t) for d in doc))
    return round(hits / len(q), 4)


def rank(
    query: str, docs: Iterable[dict[str, Any]], *, limit: int, threshold: float
) -> list[dict[str, Any]]:
    scored = []
    for doc in docs:
        s = score(query, doc["text"])
        if s > 0 and s >= threshold:
            scored.append({**doc, "score": s})
    scored.sort(key=lambda d: (-d["score"], d["start"]))
    return scored[:limit]


# -- exported videos (legacy collection / video search) ------------------------------------

SEARCH_TYPES = ("semantic", "keyword", "scene")
INDEX_TYPES = ("spoken_word", "scene")


def video_title(session: CaptureSession) -> str:
    title = session.metadata.get("title")
    return title if isinstance(title, str) and title.strip() else f"Capture session {session.id}"


def _offset(epoch_ms: float, origin_ms: int, length: float) -> float:
    """Seconds into the exported video: its time 0 is the session's start, as export measures
    its duration; clamped so a record at an edge never points outside the video."""
    return round(min(max((epoch_ms - origin_ms) / 1000, 0.0), length), 3)


def video_docs(
    store: Store, video_id: str, *, index_type: str, scene_index_id: str | None = None
) -> list[dict[str, Any]]:
    """The searchable records of one exported video, with times in seconds from its start.

    ``spoken_word``: the final transcript segments of every stream of the session.
    ``scene``: the records of its visual indexes (or of the one index ``scene_index_id``).
    """
    video = store.videos[video_id]
    session = store.sessions[video["session_id"]]
    origin, length = session.started_at_ms or 0, float(video["duration"])
    docs: list[dict[str, Any]] = []
    for rid in session.rtstream_ids:
        rts = store.rtstreams[rid]
        if index_type == "spoken_word":
            records = [(segment, None) for segment in rts.segments]
        else:
            records = [
                (record, index)
                for index in rts.indexes.values()
                if (index.id == scene_index_id if scene_index_id else index.kind == "visual")
                for record in index.records
            ]
        for record, index in records:
            start = _offset(record["start"], origin, length)
            docs.append(
                {
                    "video_id": video_id,
                    "start": start,
                    "end": max(start, _offset(record["end"], origin, length)),
                    "text": record["text"],
                    "scene_index_id": index.id if index else None,
                    "scene_index_name": index.name if index else None,
                    "metadata": {
                        "source": f"{index.kind}_index" if index else "transcript",
                        "rtstream_id": rts.id,
                        "rtstream_name": rts.name,
                    },
                }
            )
    return docs


def index_ids(store: Store, video_id: str) -> set[str]:
    session = store.sessions[store.videos[video_id]["session_id"]]
    return {i for rid in session.rtstream_ids for i in store.rtstreams[rid].indexes}


def video_results(
    store: Store, ranked: list[dict[str, Any]], *, sort_docs_on: str | None
) -> list[dict[str, Any]]:
    """Group ranked docs per video in the shape ``SearchResult._format_results`` reads:
    ``{video_id, collection_id, length, title, docs}``, the best video first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for doc in ranked:
        doc = dict(doc)
        grouped.setdefault(doc.pop("video_id"), []).append(doc)
    results = []
    for video_id, docs in grouped.items():
        video = store.videos[video_id]
        session = store.sessions[video["session_id"]]
        if sort_docs_on == "start":
            docs.sort(key=lambda d: d["start"])
        results.append(
            {
                "video_id": video_id,
                "collection_id": session.collection_id,
                "length": video["duration"],
                "title": video_title(session),
                "docs": docs,
            }
        )
    return results
