"""After the meeting: the recap its history page shows, and a follow-up email drafted from it.

The recap is the session's brief as it stands: the final one (made after capture stopped)
when there is one, else the latest, with the items that brief holds (``is_current``). Each
point keeps its evidence as numbered citations, footnote style: numbered in the order the
recap first cites them, the same moment keeping its number wherever it is cited, each a link
that opens the moment on the history page. Only moments that are stored are cited.

Plain values out (frozen dataclasses), like ``history.record``: a page or a test reads them
without touching the database. The email is plain text, built only from the recap, so the
same brief always drafts the same email.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from sessions_app.history import search
from sessions_app.history.record import epoch_ms, format_offset
from sessions_app.history.timeline import moment_url
from sessions_app.intelligence import evidence
from sessions_app.models import Alert, Brief, BriefItem, CaptureSession, Insight

LABEL_CHARS = 140  # a citation's tooltip: who said what, cut to this


@dataclass(frozen=True)
class Citation:
    number: int
    url: str  # the session's history at the moment, scrolled to the cited element
    when: str  # the moment as an offset into the meeting, "03:10"
    label: str  # what is cited: "Ana: we ship on Friday", "On screen: pricing page"


@dataclass(frozen=True)
class Point:
    id: int
    kind: str
    text: str
    owner: str
    due: str
    status: str
    status_label: str
    citations: tuple[Citation, ...]

    @property
    def is_done(self) -> bool:
        return self.status == BriefItem.Status.DONE


@dataclass(frozen=True)
class Recap:
    brief_number: int
    is_final: bool
    made_at: datetime
    summary: tuple[Point, ...]
    decisions: tuple[Point, ...]
    actions: tuple[Point, ...]
    questions: tuple[Point, ...]

    @property
    def sections(self) -> list[tuple[str, tuple[Point, ...]]]:
        """Headings and points, in the order the page and the email show them."""
        return [
            ("Summary", self.summary),
            ("Decisions", self.decisions),
            ("Action items", self.actions),
            ("Open questions", self.questions),
        ]

    @property
    def is_empty(self) -> bool:
        return not any(points for _, points in self.sections)


def _one_line(text: str) -> str:
    """``text`` on one line: whitespace runs (newlines included) become one space, and other
    control characters go, so no item can break a list or the email's layout."""
    kept = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    return " ".join(kept.split())


def _label(moment: search.Moment) -> str:
    if isinstance(moment, Insight):
        what = "On screen" if moment.kind == Insight.Kind.VISUAL else "Insight"
        text = f"{what}: {moment.text}"
    elif isinstance(moment, Alert):
        text = " ".join(["Alert:", moment.title, moment.text])
    else:
        text = f"{moment.stream.speaker}: {moment.text}"
    text = _one_line(text)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1].rstrip() + "…"


def latest_brief(session: CaptureSession) -> Brief | None:
    """The brief a recap shows: the final one when there is one, else the newest."""
    return session.briefs.order_by("-is_final", "-number").first()


def recap(session: CaptureSession, *, origin_ms: int | None = None) -> Recap | None:
    """The session's recap, or None when it has no brief yet. ``origin_ms`` is the instant
    shown as 00:00 (the history record's); by default when the session started, else its
    first cited moment."""
    brief = latest_brief(session)
    if brief is None:
        return None
    items = list(session.brief_items.filter(is_current=True).order_by("position", "id"))
    moments = search.cited_moments(items)
    if origin_ms is None and session.started_at is not None:
        origin_ms = epoch_ms(session.started_at)
    if origin_ms is None:
        origin_ms = min((m.start_ms for m in moments.values()), default=0)

    numbers: dict[tuple[str, int], int] = {}

    def point(item: BriefItem) -> Point:
        citations = []
        for kind, pk in search.cited(item):
            moment = moments.get((kind, pk))
            if moment is None:
                continue
            number = numbers.setdefault((kind, pk), len(numbers) + 1)
            anchor = evidence.history_anchor(kind, pk)
            citations.append(
                Citation(
                    number=number,
                    url=moment_url(session.pk, moment.start_ms, anchor),
                    when=format_offset(moment.start_ms - origin_ms),
                    label=_label(moment),
                )
            )
        return Point(
            id=item.pk,
            kind=item.kind,
            text=item.text,
            owner=item.owner,
            due=item.due,
            status=item.status,
            status_label=item.get_status_display(),
            citations=tuple(citations),
        )

    # Numbered in the order the page shows the sections.
    by_kind = {
        kind: tuple(point(item) for item in items if item.kind == kind)
        for kind in (
            BriefItem.Kind.SUMMARY,
            BriefItem.Kind.DECISION,
            BriefItem.Kind.ACTION,
            BriefItem.Kind.QUESTION,
        )
    }
    return Recap(
        brief_number=brief.number,
        is_final=brief.is_final,
        made_at=brief.made_at,
        summary=by_kind[BriefItem.Kind.SUMMARY],
        decisions=by_kind[BriefItem.Kind.DECISION],
        actions=by_kind[BriefItem.Kind.ACTION],
        questions=by_kind[BriefItem.Kind.QUESTION],
    )


# --- the follow-up email -------------------------------------------------------------------


def meeting_day(session: CaptureSession) -> str:
    """The meeting's date in the site's time zone, ``2026-03-14``."""
    return timezone.localtime(session.started_at or session.created_at).date().isoformat()


def _bullet(point: Point) -> str:
    if point.kind != BriefItem.Kind.ACTION:
        return f"- {_one_line(point.text)}"
    details = [f"owner: {_one_line(point.owner) or 'not named'}"]
    if point.due.strip():
        details.append(f"due: {_one_line(point.due)}")
    done = " [done]" if point.is_done else ""
    return f"- {_one_line(point.text)} ({', '.join(details)}){done}"


def email_draft(recap: Recap, session: CaptureSession) -> str:
    """A plain-text follow-up email from ``recap``: subject, greeting, the summary,
    decisions, action items (owner and due) and open questions, signed by the session's
    owner. Empty sections are left out."""
    title = _one_line(session.title)
    lines = [
        f"Subject: Follow-up: {title} ({meeting_day(session)})",
        "",
        "Hi all,",
        "",
        f"Thank you for joining {title}. Here is a recap of what we covered.",
    ]
    for heading, points in recap.sections:
        if points:
            lines += ["", f"{heading}:", *(_bullet(point) for point in points)]
    if recap.is_empty:
        lines += ["", "The meeting's brief recorded no points."]
    lines += ["", "Best regards,", _one_line(str(session.owner))]
    return "\n".join(lines) + "\n"
