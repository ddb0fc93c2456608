"""Applying a capture session's lifecycle, whoever noticed the change first.

Webhook deliveries are hints: the truth is what VideoDB says when asked again. This module
re-reads a session through the gateway, moves the stored status forward only (see
``CaptureSession.TRANSITIONS``), refreshes its streams, and starts each AI operation once
(``StreamOperation`` is the claim). Tasks, the reconciler and admin actions all call it.

Whatever changes what the session's pages show about it (its status, its streams, its AI
operations or their failure) is published to those pages once committed (``_state_changed``),
whichever process made the change: pages never poll and nothing waits for a task to finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from sessions_app import gateway
from sessions_app.capture.deliveries import LIFECYCLE_EVENTS
from sessions_app.live import broadcast, speakers
from sessions_app.live.recovery import shard_of
from sessions_app.models import (
    AlertRule,
    CaptureSession,
    RelayConnection,
    RTStream,
    StreamOperation,
    WebhookDelivery,
    url_secret,
)

logger = logging.getLogger(__name__)

S = CaptureSession.Status
OP = StreamOperation.Kind
# A relay that has not beaten for this long is gone; starting operations against its
# connection id would send their events nowhere.
RELAY_FRESHNESS = timedelta(seconds=90)
# An export asked for that brought no video by then is asked for again (the reconciler).
EXPORT_ASK_AGAIN_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class SyncResult:
    session_id: int
    status: str
    changed: bool
    start_ai: bool
    # Stopped without a video: VideoDB exports by itself, so this is the fallback's cue (ask
    # later, if its `exported` has not come by then), never a reason to ask now.
    request_export: bool
    final_brief: bool = False  # capture just ended: the brief's final pass is due


def current_ws_connection_id(session_id: int) -> str | None:
    """The connection id of the live relay that owns the session's shard, or None: the
    operations then start without one and that relay re-routes them when it connects."""
    relay = (
        RelayConnection.objects.exclude(connection_id="")
        .filter(
            shard=shard_of(session_id),
            heartbeat_at__gte=timezone.now() - RELAY_FRESHNESS,
        )
        .first()
    )
    return relay.connection_id if relay else None


def alert_callback_url(session: CaptureSession, rtstream_id: str) -> str:
    path = reverse(
        "videodb-alert-callback",
        kwargs={
            "secret": url_secret(session.webhook_secret, f"alert:{rtstream_id}"),
            "rtstream_id": rtstream_id,
        },
    )
    return f"{settings.PUBLIC_BASE_URL}{path}"


# --- status and streams ---------------------------------------------------------------------


def _state_changed(session_id: int) -> None:
    """Show the session's state on every open page once the change is committed (at once
    outside a transaction). Publishing never undoes the change: a failure is logged."""
    transaction.on_commit(partial(_publish_state, session_id), robust=True)


def _publish_state(session_id: int) -> None:
    # Read when committed, not when changed: a page never shows a state that rolled back.
    session = CaptureSession.objects.filter(pk=session_id).first()
    if session is not None:
        broadcast.publish_state(session)


def _declared_media(hint: dict[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """Media types per stream id from a webhook's data.rtstreams, when it carried them."""
    streams = ((hint or {}).get("data") or {}).get("rtstreams") or []
    declared: dict[str, tuple[str, ...]] = {}
    for item in streams:
        if isinstance(item, dict) and isinstance(item.get("media_types"), list):
            declared[str(item.get("rtstream_id") or item.get("id"))] = tuple(
                m for m in item["media_types"] if isinstance(m, str)
            )
    return declared


def _upsert_stream(session: CaptureSession, remote: gateway.RemoteStream, media: tuple) -> bool:
    """Store the stream; True if it is new."""
    values = {
        "session": session,
        "name": remote.name or remote.id,
        "kind": RTStream.kind_for(remote.name, remote.channel_id),
        "media_types": list(media),
    }
    first = {**values, "speaker_label": speakers.default_label(session, values["kind"])}
    try:
        with transaction.atomic():
            _, created = RTStream.objects.update_or_create(
                videodb_id=remote.id, defaults=values, create_defaults=first
            )
    except IntegrityError:  # a concurrent task created it between our read and write
        RTStream.objects.filter(videodb_id=remote.id).update(
            **{k: v for k, v in values.items() if k != "session"}
        )
        return False
    return created


def sync_streams(
    session: CaptureSession, remote: gateway.RemoteSession, hint: dict | None = None
) -> bool:
    """Store the session's streams as VideoDB lists them; True if any is new."""
    declared = _declared_media(hint)
    added = False
    for stream in remote.streams:
        media = stream.media_types or declared.get(stream.id, ())
        added = _upsert_stream(session, stream, media) or added
    return added


def _fields_for(session: CaptureSession, status: str, hint: dict | None) -> dict[str, Any]:
    now = timezone.now()
    data = (hint or {}).get("data") or {}
    fields: dict[str, Any] = {}
    if status == S.ACTIVE and session.started_at is None:
        fields["started_at"] = now
    if status in CaptureSession.ENDED_STATUSES and session.ended_at is None:
        fields["ended_at"] = now
        if session.started_at is None:
            fields["started_at"] = now
    if status == S.EXPORTED:
        for name, key in (
            ("exported_video_id", "exported_video_id"),
            ("stream_url", "stream_url"),
            ("player_url", "player_url"),
        ):
            value = data.get(key)
            if isinstance(value, str) and value:
                fields[name] = value[:1000]
    if status == S.FAILED:
        error = data.get("error")
        fields["error"] = (
            error if isinstance(error, dict) else {"message": str(error or "VideoDB failed")}
        )
    return fields


def _advance(session: CaptureSession, status: str, hint: dict | None) -> bool:
    """Every status change goes through here: applied once, and then shown."""
    if status == S.EXPORTED and not CaptureSession.can_transition(session.status, status):
        # VideoDB exports by itself, so `exported` can be the first sign of the end that
        # reaches Copilot (its `stopped` lost, or behind): the capture stopped on the way.
        _advance(session, S.STOPPED, None)
    if status not in S.values or not CaptureSession.can_transition(session.status, status):
        return False
    changed = session.advance(status, **_fields_for(session, status, hint))
    if changed:
        _state_changed(session.pk)
    return changed


def apply_remote(
    session: CaptureSession, remote: gateway.RemoteSession, hint: dict | None = None
) -> SyncResult:
    """Bring the stored session up to what VideoDB says, plus an authenticated hint that is
    further along (VideoDB's read side may lag its own webhooks by a moment)."""
    added = sync_streams(session, remote, hint)
    changed = _advance(session, remote.status, hint)
    hinted = LIFECYCLE_EVENTS.get((hint or {}).get("event", ""))
    if hinted and hinted != session.status:
        changed = _advance(session, hinted, hint) or changed
    if added and not changed:
        _state_changed(session.pk)  # new streams: their speaker and health rows
    if session.status == S.EXPORTED:
        _complete_video(session, remote, hint)
    return SyncResult(
        session_id=session.pk,
        status=session.status,
        changed=changed,
        start_ai=session.status == S.ACTIVE,
        request_export=session.status == S.STOPPED and not session.exported_video_id,
        final_brief=changed and session.has_ended,
    )


def _complete_video(
    session: CaptureSession, remote: gateway.RemoteSession, hint: dict | None
) -> None:
    """Fill in what an exported session lacks of its video: the session may have become
    `exported` through a read or a late `stopped` before the `exported` webhook, the only
    one that carries the video's URLs. What is stored already is kept."""
    data = (hint or {}).get("data") or {}
    found = {
        "exported_video_id": data.get("exported_video_id") or remote.exported_video_id,
        "stream_url": data.get("stream_url"),
        "player_url": data.get("player_url"),
    }
    missing = {
        name: value[:1000]
        for name, value in found.items()
        if isinstance(value, str) and value and not getattr(session, name)
    }
    if missing:
        CaptureSession.objects.filter(pk=session.pk).update(**missing)
        for name, value in missing.items():
            setattr(session, name, value)
        _state_changed(session.pk)


def process_delivery(delivery_id: int) -> SyncResult | None:
    """Act on one stored webhook delivery. None if it is gone or already processed."""
    delivery = WebhookDelivery.objects.select_related("session").filter(pk=delivery_id).first()
    if delivery is None or delivery.processed_at is not None:
        return None
    WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=F("attempts") + 1)
    session = delivery.session
    remote = gateway.get_capture_session(session.videodb_id)
    result = apply_remote(session, remote, hint=delivery.payload)
    WebhookDelivery.objects.filter(pk=delivery_id, processed_at__isnull=True).update(
        processed_at=timezone.now(), outcome=WebhookDelivery.Outcome.PROCESSED, error=""
    )
    return result


def record_delivery_failure(delivery_id: int, message: str) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id, processed_at__isnull=True).update(
        processed_at=timezone.now(), outcome=WebhookDelivery.Outcome.FAILED, error=message
    )


def sync_session(session_id: int) -> SyncResult | None:
    """Re-read a session from VideoDB and apply it (the reconciler's repair)."""
    session = CaptureSession.objects.filter(pk=session_id).first()
    if session is None or not session.videodb_id:
        return None
    return apply_remote(session, gateway.get_capture_session(session.videodb_id))


# --- AI operations --------------------------------------------------------------------------


def _claim(
    stream: RTStream, key: str, kind: str, **fields: Any
) -> tuple[StreamOperation | None, bool]:
    """Take the claim on (stream, key). Returns (operation, retaken): (None, False) when it is
    started or another worker holds it; retaken is True for a stale claim taken over."""
    now = timezone.now()
    try:
        with transaction.atomic():
            op = StreamOperation.objects.create(
                stream=stream, key=key, kind=kind, claimed_at=now, **fields
            )
            return op, False
    except IntegrityError:
        pass
    op = StreamOperation.objects.get(stream=stream, key=key)
    if op.state == StreamOperation.State.STARTED:
        return None, False
    retaken = StreamOperation.objects.filter(
        pk=op.pk,
        state=StreamOperation.State.CLAIMED,
        claimed_at__lt=now - timedelta(seconds=settings.OPERATION_CLAIM_STALE_SECONDS),
    ).update(claimed_at=now, **fields)
    return (StreamOperation.objects.get(pk=op.pk), True) if retaken else (None, False)


def ensure_operation(
    stream: RTStream,
    key: str,
    kind: str,
    start: Callable[[], str | None],
    *,
    find: Callable[[], str | None] | None = None,
    **fields: Any,
) -> str | None:
    """Start an operation once. Returns VideoDB's id for it ("" when VideoDB gives none) if
    this call started it, None if it was already started or is being started elsewhere.

    ``find`` looks the operation up in VideoDB; it is asked before re-taking a stale claim,
    because the worker that died holding it may have started the operation after all.
    """
    op, retaken = _claim(stream, key, kind, **fields)
    if op is None:
        return None
    try:
        existing = find() if retaken and find is not None else None
        remote_id = existing or start() or ""
    except gateway.GatewayError:
        # Release the claim so the retry (or the reconciler) can take it again.
        StreamOperation.objects.filter(pk=op.pk, state=StreamOperation.State.CLAIMED).delete()
        raise
    StreamOperation.objects.filter(pk=op.pk).update(
        state=StreamOperation.State.STARTED, remote_id=remote_id, started_at=timezone.now()
    )
    logger.info("%s %s on %s", "adopted" if existing else "started", key, stream.videodb_id)
    return remote_id


def _started(stream: RTStream, key: str) -> StreamOperation | None:
    return stream.operations.filter(key=key, state=StreamOperation.State.STARTED).first()


def _ensure_event(rule: AlertRule) -> str:
    if rule.videodb_event_id:
        return rule.videodb_event_id
    event_id = gateway.create_event(prompt=rule.prompt, label=rule.label)
    # Two workers may both create one; the first recorded wins and the other is unused.
    AlertRule.objects.filter(pk=rule.pk, videodb_event_id="").update(videodb_event_id=event_id)
    rule.refresh_from_db(fields=["videodb_event_id"])
    return rule.videodb_event_id


def _event_is_gone(exc: gateway.GatewayError, event_id: str) -> bool:
    return not exc.retryable and event_id in exc.message and "not found" in exc.message.lower()


def _forget_event(rule: AlertRule, event_id: str) -> None:
    AlertRule.objects.filter(pk=rule.pk, videodb_event_id=event_id).update(videodb_event_id="")
    rule.refresh_from_db(fields=["videodb_event_id"])


def start_ai(session_id: int) -> list[str]:
    """Start transcript and indexes on every stream of an active session, then its alerts.

    Returns the keys this call started. Safe to run any number of times, concurrently.
    """
    session = CaptureSession.objects.filter(pk=session_id).first()
    if session is None or session.status != S.ACTIVE:
        return []
    ws = current_ws_connection_id(session.pk)
    started: list[str] = []
    streams = list(session.streams.all())

    # fmt: off
    def run(stream: RTStream, key: str, kind: str, start: Callable[[], Any], **kw: Any) -> None:
        if ensure_operation(stream, key, kind, start, ws_connection_id=ws or "", **kw) is not None:
            started.append(f"{stream.videodb_id}:{key}")

    for stream in streams:
        rts = stream.videodb_id
        if stream.has_audio:
            run(stream, OP.TRANSCRIPT, OP.TRANSCRIPT,
                partial(gateway.start_transcript, rts, ws_connection_id=ws))
        if stream.has_audio and session.audio_prompt.strip():
            run(stream, OP.AUDIO_INDEX, OP.AUDIO_INDEX,
                partial(gateway.index_audio, rts, prompt=session.audio_prompt,
                        ws_connection_id=ws),
                find=partial(gateway.find_scene_index, rts, gateway.AUDIO_INDEX_NAME))
        if stream.has_video and session.visual_prompt.strip():
            run(stream, OP.VISUAL_INDEX, OP.VISUAL_INDEX,
                partial(gateway.index_visuals, rts, prompt=session.visual_prompt,
                        ws_connection_id=ws),
                find=partial(gateway.find_scene_index, rts, gateway.VISUAL_INDEX_NAME))

    def watch(stream: RTStream, rule: AlertRule, medium: str, index: StreamOperation,
              event_id: str) -> None:
        run(stream, f"alert:{rule.pk}:{medium}", OP.ALERT,
            partial(gateway.create_alert, stream.videodb_id, index.remote_id,
                    event_id=event_id,
                    callback_url=alert_callback_url(session, stream.videodb_id),
                    ws_connection_id=ws),
            find=partial(gateway.find_alert, stream.videodb_id, index.remote_id,
                         event_id=event_id),
            alert_rule=rule, index_id=index.remote_id)

    # Alerts watch an index, so they come after the indexes they need have started.
    for rule in session.alert_rules.filter(is_enabled=True):
        targets = []
        if rule.watches_audio:
            targets.append(("audio", OP.AUDIO_INDEX))
        if rule.watches_visual:
            targets.append(("visual", OP.VISUAL_INDEX))
        for stream in streams:
            for medium, index_key in targets:
                index = _started(stream, index_key)
                if index is None or not index.remote_id:
                    continue
                event_id = _ensure_event(rule)
                try:
                    watch(stream, rule, medium, index, event_id)
                except gateway.GatewayError as exc:
                    if not _event_is_gone(exc, event_id):
                        raise
                    # VideoDB no longer knows the rule's event (deleted, or a local
                    # emulator restarted): make a new one, once, instead of never alerting.
                    _forget_event(rule, event_id)
                    watch(stream, rule, medium, index, _ensure_event(rule))
    # fmt: on
    if started:
        CaptureSession.objects.filter(pk=session.pk).update(ai_error="")
        _state_changed(session.pk)  # the owner's status card lists the running operations
    return started


def record_ai_failure(session_id: int, message: str) -> None:
    CaptureSession.objects.filter(pk=session_id).update(ai_error=message[:2000])
    _state_changed(session_id)


def request_export(session_id: int) -> str:
    """Ask VideoDB to export a stopped session that has no video; store the video if it is
    ready at once. This is the fallback: VideoDB exports a stopped session by itself and says
    so with ``capture_session.exported``, which stores the video without anyone asking.

    However many workers call this at once, VideoDB is asked once per
    ``EXPORT_ASK_AGAIN_AFTER``: the ask is claimed in the database first, and the claim is
    given back when VideoDB does not answer, so that a retry may ask again.
    """
    session = CaptureSession.objects.filter(pk=session_id).first()
    if session is None or session.status != S.STOPPED or session.exported_video_id:
        return "not needed"
    now = timezone.now()
    claimed = (
        CaptureSession.objects.filter(pk=session_id, status=S.STOPPED, exported_video_id="")
        .filter(
            Q(export_requested_at__isnull=True)
            | Q(export_requested_at__lt=now - EXPORT_ASK_AGAIN_AFTER)
        )
        .update(export_requested_at=now)
    )
    if not claimed:
        return "already requested"
    try:
        result = gateway.export_capture_session(session.videodb_id)
    except gateway.GatewayError:
        CaptureSession.objects.filter(pk=session_id, export_requested_at=now).update(
            export_requested_at=session.export_requested_at
        )
        raise
    if result.status == "exported" and result.video_id:
        ready = {
            "exported_video_id": result.video_id,
            "stream_url": result.stream_url,
            "player_url": result.player_url,
        }
        _advance(session, S.EXPORTED, {"data": ready})
        return "exported"
    return result.status or "requested"


def stop_capture(session: CaptureSession) -> bool:
    """Ask VideoDB to stop a live capture. False if it is not live; the stop itself arrives
    later through the usual webhooks (and the reconciler, if those are lost)."""
    if not session.videodb_id or session.has_ended:
        return False
    gateway.stop_capture_session(session.videodb_id, end_user_id=session.end_user_id)
    return True


def reset_delivery(delivery: WebhookDelivery) -> bool:
    """Mark a delivery to be processed again (an operator's action). False for a delivery
    of an event Copilot does not act on."""
    if delivery.event not in LIFECYCLE_EVENTS:
        return False
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        processed_at=None, outcome=WebhookDelivery.Outcome.PENDING, error=""
    )
    return True


def record_lost(session_id: int, message: str) -> bool:
    """VideoDB answered that it does not know the session: it has failed for good."""
    session = CaptureSession.objects.filter(pk=session_id).first()
    if session is None or session.has_ended:
        return False
    return _advance(
        session,
        S.FAILED,
        {"data": {"error": {"code": "not_found_in_videodb", "message": message}}},
    )
