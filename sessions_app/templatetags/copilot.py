"""Template filters for times: durations and offsets into a session."""

from __future__ import annotations

from datetime import timedelta

from django import template

from sessions_app.history.record import format_offset

register = template.Library()


@register.filter
def duration(value: timedelta | int | None) -> str:
    """A timedelta or milliseconds as ``mm:ss`` or ``h:mm:ss``."""
    if value is None:
        return ""
    ms = int(value.total_seconds() * 1000) if isinstance(value, timedelta) else int(value)
    return format_offset(max(ms, 0))
