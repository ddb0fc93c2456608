"""Catch me up: what a participant missed, by the session's sequence numbers.

A browser remembers the last sequence number it showed for a session (static/copilot/
catchup.js); coming back (a reload, a socket that was away) or joining late, it asks for
what changed after it. The answer is the brief's current items and the alerts that fired
numbered after that, each with its evidence, and ``through``: the number it is complete up
to, which the browser remembers once the panel is dismissed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sessions_app.intelligence import citations
from sessions_app.models import Alert, BriefItem, CaptureSession

# The brief's lists in the order a catch-up reads best: the gist, then what was settled.
HEADINGS = {
    BriefItem.Kind.SUMMARY: "Summary",
    BriefItem.Kind.DECISION: "Decisions",
    BriefItem.Kind.ACTION: "Action items",
    BriefItem.Kind.QUESTION: "Open questions",
}
MAX_ALERTS = 10  # the latest; the live page lists them all


@dataclass
class Group:
    kind: str
    label: str
    items: list[BriefItem]


@dataclass
class CatchUp:
    since: int
    through: int
    groups: list[Group] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    more_alerts: int = 0

    @property
    def is_empty(self) -> bool:
        return not self.groups and not self.alerts


def since(session: CaptureSession, seq: int) -> CatchUp:
    """What changed in ``session`` after sequence number ``seq``. ``through`` is read before
    the items, so whatever it numbers is in the answer (or newer)."""
    through = CaptureSession.objects.values_list("last_seq", flat=True).get(pk=session.pk)
    items = list(
        BriefItem.objects.filter(session=session, is_current=True, seq__gt=seq).order_by(
            "position", "id"
        )
    )
    fired = list(
        Alert.objects.filter(session=session, triggered=True, seq__gt=seq)
        .select_related("rule")
        .order_by("-start_ms", "-id")
    )
    citations.attach(session, items)
    groups = [
        Group(kind, heading, [item for item in items if item.kind == kind])
        for kind, heading in HEADINGS.items()
    ]
    alerts = sorted(fired[:MAX_ALERTS], key=lambda alert: (alert.start_ms, alert.pk))
    moments = citations.of_many(session, [[{"kind": "alert", "id": a.pk}] for a in alerts])
    for alert, (moment,) in zip(alerts, moments, strict=True):
        alert.moment = moment
    return CatchUp(
        since=seq,
        through=max(through, seq),
        groups=[group for group in groups if group.items],
        alerts=alerts,
        more_alerts=max(0, len(fired) - MAX_ALERTS),
    )
