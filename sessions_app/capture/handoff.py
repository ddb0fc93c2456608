"""Starting a capture: create the session in VideoDB and hand the desktop client a token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from sessions_app import gateway
from sessions_app.models import AlertRule, CaptureSession, User, url_secret


@dataclass(frozen=True)
class ClientToken:
    capture_session_id: str
    token: str
    expires_at: datetime


def webhook_url(session: CaptureSession) -> str:
    secret = url_secret(session.webhook_secret, "lifecycle")
    path = reverse("videodb-webhook", kwargs={"secret": secret})
    return f"{settings.PUBLIC_BASE_URL}{path}"


def end_user_of(session: CaptureSession) -> str:
    """The VideoDB end user a session belongs to: one per Copilot user, never shared."""
    return session.end_user_id or f"copilot-user-{session.owner_id}"


def create_session(
    owner: User,
    *,
    title: str,
    audio_prompt: str,
    visual_prompt: str,
    alert_rules: Iterable[AlertRule] = (),
    series: str = "",
) -> CaptureSession:
    """Create the session here and in VideoDB. Raises ``gateway.GatewayError`` (and keeps
    nothing) when VideoDB refuses or cannot be reached. ``series``: the meetings it shares
    action items with (empty: those of the same title)."""
    with transaction.atomic():
        session = CaptureSession.objects.create(
            owner=owner,
            title=title,
            series=series,
            audio_prompt=audio_prompt,
            visual_prompt=visual_prompt,
            end_user_id=f"copilot-user-{owner.pk}",
        )
        session.alert_rules.set([r for r in alert_rules if r.owner_id == owner.pk])
    try:
        remote = gateway.create_capture_session(
            end_user_id=session.end_user_id,
            callback_url=webhook_url(session),
            metadata={"app": "copilot", "copilot_session": str(session.uuid), "title": title},
        )
    except gateway.GatewayError:
        session.delete()
        raise
    session.videodb_id = remote.id
    session.metadata = remote.metadata
    session.save(update_fields=["videodb_id", "metadata", "updated_at"])
    return session


def mint_client_token(session: CaptureSession) -> ClientToken:
    """A fresh short-lived token for the desktop client: it can stream, never administer,
    and reaches only the sessions of this session's end user (one per Copilot user)."""
    ttl = settings.VIDEODB_CLIENT_TOKEN_TTL
    token = gateway.generate_client_token(ttl, end_user_id=end_user_of(session))
    return ClientToken(
        capture_session_id=session.videodb_id or "",
        token=token,
        expires_at=timezone.now() + timedelta(seconds=ttl),
    )
