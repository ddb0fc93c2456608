"""Read-side queries shared by pages, exports and the admin."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from sessions_app.models import CaptureSession, User


def sessions_owned_by(user: User) -> QuerySet[CaptureSession]:
    """The user's sessions, newest first, with the counts the lists show."""
    return (
        CaptureSession.objects.filter(owner=user)
        .annotate(
            stream_count=Count("streams", distinct=True),
            alert_count=Count("alerts", distinct=True),
        )
        .order_by("-created_at", "-id")
    )
