"""Briefs as the brief service keeps them, written directly: a generation (``brief``) and its
points (``decided``, ``to_do``, ``summed_up``, ``asked``), each citing stored moments. For
the pages and services that read briefs, without running one."""

from __future__ import annotations

import itertools

from sessions_app.models import (
    Alert,
    Brief,
    BriefItem,
    CaptureSession,
    Insight,
    TranscriptSegment,
)
from tests.sessions_app.conftest import take_seq

Moment = TranscriptSegment | Insight | Alert
_keys = itertools.count(1)


def cite(moment: Moment) -> dict[str, object]:
    """The evidence entry for a stored moment, as the brief stores it."""
    if isinstance(moment, TranscriptSegment):
        kind = "transcript"
    elif isinstance(moment, Insight):
        kind = moment.kind  # "visual" or "audio"
    else:
        kind = "alert"
    return {"kind": kind, "id": moment.pk}


def brief(session: CaptureSession, *, final: bool = False) -> Brief:
    """The session's next brief generation."""
    number = session.briefs.count() + 1
    return Brief.objects.create(
        session=session, number=number, is_final=final, model_name="basic", prompt_version="t1"
    )


def _point(
    session: CaptureSession,
    kind: str,
    text: str,
    evidence: tuple[Moment, ...],
    **fields: object,
) -> BriefItem:
    fields.setdefault("position", session.brief_items.filter(kind=kind).count())
    return BriefItem.objects.create(
        session=session,
        kind=kind,
        key=f"k{next(_keys)}",
        text=text,
        evidence=[cite(moment) for moment in evidence],
        start_ms=min((moment.start_ms for moment in evidence), default=None),
        seq=take_seq(session.pk),
        **fields,
    )


def summed_up(session: CaptureSession, text: str, *evidence: Moment, **fields) -> BriefItem:
    return _point(session, BriefItem.Kind.SUMMARY, text, evidence, **fields)


def decided(session: CaptureSession, text: str, *evidence: Moment, **fields) -> BriefItem:
    return _point(session, BriefItem.Kind.DECISION, text, evidence, **fields)


def to_do(
    session: CaptureSession,
    text: str,
    *evidence: Moment,
    owner: str = "",
    due: str = "",
    **fields: object,
) -> BriefItem:
    return _point(session, BriefItem.Kind.ACTION, text, evidence, owner=owner, due=due, **fields)


def asked(session: CaptureSession, text: str, *evidence: Moment, **fields) -> BriefItem:
    return _point(session, BriefItem.Kind.QUESTION, text, evidence, **fields)
