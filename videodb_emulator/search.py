"""Keyword scoring used by RTStream search (documented in the README; not semantic)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

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
