"""Keyword scoring used by every search the emulator answers (documented in the README; not
semantic), and the records an exported video is searched over."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from . import assets
from .state import RTStream, SceneIndex, Store

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


def video_docs(
    store: Store, video_id: str, *, index_type: str, scene_index_id: str | None = None
) -> list[dict[str, Any]]:
    """The searchable records of one exported video, with times in seconds from its start.

    ``spoken_word``: everything said on the video's stored audio streams (its recording).
    ``scene``: the records of its visual indexes (or of the one index ``scene_index_id``).
    """
    v = assets.view(store, store.videos[video_id])
    docs: list[dict[str, Any]] = []
    if index_type == "spoken_word":
        for said in assets.spoken(v):
            docs.append(
                _doc(video_id, said.start, said.end, said.text, None, said.rtstream, "transcript")
            )
        return docs
    for rts in v.streams:
        for index in rts.indexes.values():
            wanted = index.id == scene_index_id if scene_index_id else index.kind == "visual"
            if not wanted:
                continue
            for record in index.records:
                if v.covers(record):
                    start = v.offset(record["start"])
                    end = max(start, v.offset(record["end"]))
                    source = f"{index.kind}_index"
                    docs.append(_doc(video_id, start, end, record["text"], index, rts, source))
    return docs


def _doc(
    video_id: str,
    start: float,
    end: float,
    text: str,
    index: SceneIndex | None,
    rts: RTStream,
    source: str,
) -> dict[str, Any]:
    return {
        "video_id": video_id,
        "start": start,
        "end": end,
        "text": text,
        "scene_index_id": index.id if index else None,
        "scene_index_name": index.name if index else None,
        "metadata": {"source": source, "rtstream_id": rts.id, "rtstream_name": rts.name},
    }


def index_ids(store: Store, video_id: str) -> set[str]:
    v = assets.view(store, store.videos[video_id])
    return {i for rts in v.streams for i in rts.indexes}


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
                "title": assets.name_of(store, video),
                "docs": docs,
            }
        )
    return results
