"""Evidence: what a brief item or an answer cites, stored as ``[{"kind": …, "id": …}]``.

The one definition of the evidence kinds, the table each names, and where a cited moment is
shown: its element on the live page (``seg-12``, ``ins-3``, ``alert-9``) and on the history
page (``line-12``, ``ins-3``, ``alert-9``). The record, search, citations and recap all read
stored evidence through ``pairs``, so a malformed entry is skipped the same way everywhere.
"""

from __future__ import annotations

from typing import Any

from sessions_app.models import Alert, Insight, TranscriptSegment

TRANSCRIPT, VISUAL, AUDIO, ALERT = "transcript", "visual", "audio", "alert"
KINDS = (TRANSCRIPT, VISUAL, AUDIO, ALERT)

Moment = TranscriptSegment | Insight | Alert

MODELS: dict[str, type[Moment]] = {
    TRANSCRIPT: TranscriptSegment,
    VISUAL: Insight,
    AUDIO: Insight,
    ALERT: Alert,
}
_LIVE_PREFIX = {TRANSCRIPT: "seg", VISUAL: "ins", AUDIO: "ins", ALERT: "alert"}
_HISTORY_PREFIX = {TRANSCRIPT: "line", VISUAL: "ins", AUDIO: "ins", ALERT: "alert"}


def pairs(evidence: Any) -> list[tuple[str, int]]:
    """The well-formed ``(kind, id)`` pairs of stored evidence, each once, in its order."""
    found: list[tuple[str, int]] = []
    for entry in evidence if isinstance(evidence, list) else []:
        if not isinstance(entry, dict):
            continue
        kind, pk = entry.get("kind"), entry.get("id")
        if kind in MODELS and isinstance(pk, int) and not isinstance(pk, bool):
            found.append((kind, pk))
    return list(dict.fromkeys(found))


def live_anchor(kind: str, pk: int) -> str:
    """The element showing a cited moment on the live page (templates/sessions_app/live.html)."""
    return f"{_LIVE_PREFIX[kind]}-{pk}"


def history_anchor(kind: str, pk: int) -> str:
    """The element showing a cited moment on the history page (history.html)."""
    return f"{_HISTORY_PREFIX[kind]}-{pk}"
