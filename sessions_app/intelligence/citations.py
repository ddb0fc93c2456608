"""Where cited evidence points: each ``{kind, id}`` of an answer or a brief item as a moment
a page can open.

One citation serves both pages: on the live page it names the element to scroll to and
highlight (``seg-12``, ``ins-3``, ``alert-9``, static/copilot/ask.js), and its link opens
the history page at that moment (``?at=<ms>#line-12``), which is also where it leads when
the live page no longer shows the element. Evidence whose item was deleted is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sessions_app.history import timeline
from sessions_app.history.record import epoch_ms, format_offset
from sessions_app.intelligence import evidence as cited
from sessions_app.intelligence.evidence import ALERT, AUDIO, TRANSCRIPT, VISUAL
from sessions_app.models import CaptureSession


@dataclass(frozen=True)
class Citation:
    number: int  # 1, 2, … in the order cited
    kind: str
    id: int
    start_ms: int
    offset: str  # "03:10" into the session
    live_anchor: str  # the element on the live page
    history_url: str  # the moment on the history page

    @property
    def kind_label(self) -> str:
        return {TRANSCRIPT: "said", VISUAL: "on screen", AUDIO: "insight", ALERT: "alert"}[
            self.kind
        ]


def of_many(session: CaptureSession, evidence_lists: Sequence[Any]) -> list[list[Citation]]:
    """The citations of each evidence list, in the same order: one query per kind of item
    cited, however many lists."""
    wanted: dict[type, set[int]] = {}
    for evidence in evidence_lists:
        for kind, pk in cited.pairs(evidence):
            wanted.setdefault(cited.MODELS[kind], set()).add(pk)
    starts: dict[tuple[type, int], int] = {}
    for model, ids in wanted.items():
        rows = model.objects.filter(session=session, pk__in=ids).values_list("pk", "start_ms")
        starts.update({(model, pk): start for pk, start in rows})
    origin = epoch_ms(session.started_at) if session.started_at else None
    out = []
    for evidence in evidence_lists:
        found: list[Citation] = []
        for kind, pk in cited.pairs(evidence):
            start = starts.get((cited.MODELS[kind], pk))
            if start is None:
                continue
            found.append(
                Citation(
                    number=len(found) + 1,
                    kind=kind,
                    id=pk,
                    start_ms=start,
                    offset=format_offset(start - origin) if origin is not None else "",
                    live_anchor=cited.live_anchor(kind, pk),
                    history_url=timeline.moment_url(
                        session.pk, start, cited.history_anchor(kind, pk)
                    ),
                )
            )
        out.append(found)
    return out


def of(session: CaptureSession, evidence: Any) -> list[Citation]:
    return of_many(session, [evidence])[0]


def attach(session: CaptureSession, items: Iterable[Any]) -> None:
    """Resolve the evidence of many items at once and keep each item's citations on it
    (``item.citations``), for a page that renders a whole list (broadcast.render uses it)."""
    items = list(items)
    for item, found in zip(items, of_many(session, [i.evidence for i in items]), strict=True):
        item.citations = found
