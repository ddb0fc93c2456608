"""Read-side queries shared by pages, exports and the admin."""

from __future__ import annotations

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet

from sessions_app.models import CaptureSession


def triggered_alerts() -> Count:
    """The alert count every list shows: alerts that fired (VideoDB also reports a rule that
    did not, ``triggered`` False). For a session or a rule, whose alerts are ``alerts``;
    distinct, so it stays right when the query joins other rows."""
    return Count("alerts", filter=Q(alerts__triggered=True), distinct=True)


def with_counts(sessions: QuerySet[CaptureSession]) -> QuerySet[CaptureSession]:
    """``sessions`` with the counts and duration the lists show and sort by."""
    return sessions.annotate(
        stream_count=Count("streams", distinct=True),
        alert_count=triggered_alerts(),
        duration=ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField()),
    )
