"""Sharing a session with viewers through revocable, expiring links."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from sessions_app.live import broadcast
from sessions_app.models import CaptureSession, ShareLink, User


def create_link(
    session: CaptureSession,
    created_by: User,
    *,
    expires_at: datetime | None = None,
    can_ask: bool = False,
) -> ShareLink:
    """A new link; with ``can_ask`` its holders may also ask the meeting questions."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("a share link must expire in the future")
    return ShareLink.objects.create(
        session=session, created_by=created_by, expires_at=expires_at, can_ask=can_ask
    )


def resolve(token: str) -> ShareLink | None:
    """The valid link for ``token``, or None: revoked, expired and unknown look the same."""
    return ShareLink.objects.valid().select_related("session").filter(token=token).first()


def revoke(link: ShareLink) -> bool:
    """Revoke ``link``; True if this call revoked it, False if it already was.

    Once that is committed, sockets watching through the link close, not when they next
    reconnect. Sent even when the link already was revoked: each socket asks access again
    before it closes, so a repeat closes only what that link alone let in (a signed-in
    viewer another valid link admits stays).
    """
    now = timezone.now()
    changed = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=now)
    if changed:
        link.revoked_at = now
    transaction.on_commit(
        partial(broadcast.close_sockets, link.session_id, share_link_id=link.pk), robust=True
    )
    return bool(changed)
