"""Accepting VideoDB's webhook deliveries: validate, deduplicate, store, count refusals.

VideoDB delivers at least once, so the same event may come twice, late, or out of order.
A delivery is stored (unique by its dedupe key) and only then acted on, by a task; a
repeat finds the key taken and changes nothing.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.options import Options
from django.utils import timezone

from sessions_app.live.events import EventError, json_object
from sessions_app.models import CaptureSession, WebhookDelivery, WebhookRejection

LIFECYCLE_EVENTS = {
    "capture_session.created": CaptureSession.Status.CREATED,
    "capture_session.starting": CaptureSession.Status.STARTING,
    "capture_session.active": CaptureSession.Status.ACTIVE,
    "capture_session.stopping": CaptureSession.Status.STOPPING,
    "capture_session.stopped": CaptureSession.Status.STOPPED,
    "capture_session.exported": CaptureSession.Status.EXPORTED,
    "capture_session.failed": CaptureSession.Status.FAILED,
}
MAX_ID_LENGTH = 128


@dataclass(frozen=True)
class Envelope:
    event: str
    capture_session_id: str
    timestamp: datetime
    raw_timestamp: str
    status: str
    event_id: str
    data: dict[str, Any]
    payload: dict[str, Any]

    @property
    def is_known(self) -> bool:
        return self.event in LIFECYCLE_EVENTS

    @property
    def dedupe_key(self) -> str:
        if self.event_id:
            return f"event:{self.event_id}"
        # No event id: the same session, event and timestamp is the same delivery.
        digest = hashlib.sha256(
            f"{self.capture_session_id}\n{self.event}\n{self.raw_timestamp}".encode()
        ).hexdigest()
        return f"derived:{digest}"


def _string(payload: dict[str, Any], name: str, *, required: bool) -> str:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise EventError(f"'{name}' is required")
        return ""
    if not isinstance(value, str):
        raise EventError(f"'{name}' must be a string")
    if len(value) > MAX_ID_LENGTH:
        raise EventError(f"'{name}' is longer than {MAX_ID_LENGTH} characters")
    return value


def parse_timestamp(value: str, name: str = "timestamp") -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"'{name}' must be an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise EventError(f"'{name}' must carry a time zone (e.g. a trailing Z)")
    try:
        # In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows, and
        # "9999-12-31T23:59:59-23:59" is past the year 9999 in UTC, which neither the
        # database nor Python holds: refused here rather than failing to store it.
        return parsed.astimezone(UTC)
    except OverflowError:
        raise EventError(f"'{name}' is out of range") from None


def parse_envelope(body: bytes) -> Envelope:
    """The webhook envelope; EventError naming what is wrong when it is not one."""
    payload = json_object(body)
    version = payload.get("version")
    if version is not None and not isinstance(version, str | int):
        raise EventError("'version' must be a string")
    event = _string(payload, "event", required=True)
    session_id = _string(payload, "capture_session_id", required=True)
    raw_timestamp = _string(payload, "timestamp", required=True)
    timestamp = parse_timestamp(raw_timestamp)
    status = _string(payload, "status", required=False)
    event_id = _string(payload, "event_id", required=False)
    data = payload.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError("'data' must be a JSON object")
    return Envelope(
        event=event,
        capture_session_id=session_id,
        timestamp=timestamp,
        raw_timestamp=raw_timestamp,
        status=status,
        event_id=event_id,
        data=data,
        payload=payload,
    )


@dataclass(frozen=True)
class Claim:
    """The session a delivery names, and whether its dedupe key is already stored."""

    session_id: int
    webhook_secret: str
    seen: bool


@functools.cache
def _claim_sql(vendor: str) -> str:
    """find_claim's query, for the database ``vendor``: the same on PostgreSQL and SQLite."""
    quote = connection.ops.quote_name
    sessions = CaptureSession._meta
    deliveries = WebhookDelivery._meta

    def column(meta: Options, name: str) -> str:
        return quote(meta.get_field(name).column)

    # Only names from the models' metadata, quoted, go into the text; both values are bound.
    return (
        f"SELECT {column(sessions, 'id')}, {column(sessions, 'webhook_secret')}, "  # noqa: S608
        f"EXISTS (SELECT 1 FROM {quote(deliveries.db_table)} "
        f"WHERE {column(deliveries, 'dedupe_key')} = %s) "
        f"FROM {quote(sessions.db_table)} WHERE {column(sessions, 'videodb_id')} = %s"
    )


def find_claim(envelope: Envelope) -> Claim | None:
    """Look up the named session and the delivery's dedupe key in one query.

    An at-least-once sender repeats itself, so repeats are a large share of the traffic; this
    way a repeat costs a single round trip (no transaction, no second SELECT). The caller
    must check the secret before it looks at ``seen``, so that a stranger learns nothing.

    The query is written once rather than built by the ORM on every call: building this
    ``Exists`` query cost more CPU than running it, on every webhook (profiled under
    bench/webhooks.py: README, Performance). ``videodb_id`` is unique: one row at most.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _claim_sql(connection.vendor), [envelope.dedupe_key, envelope.capture_session_id]
        )
        row = cursor.fetchone()
    if row is None:
        return None
    session_id, webhook_secret, seen = row
    return Claim(session_id, webhook_secret, bool(seen))  # SQLite answers EXISTS with 0 or 1


def insert(session_id: int, envelope: Envelope, raw_body: str) -> int:
    """Store the delivery and return its id; IntegrityError when the key is already taken.

    Call inside ``transaction.atomic()`` and enqueue its processing with
    ``transaction.on_commit``, so a task never looks for a row that is not committed yet, and
    a row is never committed without its task being at least attempted (the reconciler
    covers a failed publish). The unique dedupe key settles the race between two copies that
    both passed ``find_claim``: the second insert fails and its transaction rolls back.
    """
    known = envelope.is_known
    return WebhookDelivery.objects.create(
        dedupe_key=envelope.dedupe_key,
        session_id=session_id,
        event=envelope.event,
        status=envelope.status,
        event_timestamp=envelope.timestamp,
        raw_body=raw_body,
        payload=envelope.payload,
        outcome=WebhookDelivery.Outcome.PENDING if known else WebhookDelivery.Outcome.IGNORED,
        processed_at=None if known else timezone.now(),
    ).pk


def is_stored(envelope: Envelope) -> bool:
    return WebhookDelivery.objects.filter(dedupe_key=envelope.dedupe_key).exists()


def count_rejection(reason: str) -> None:
    """Count a refused call; nothing of its body is kept."""
    now = timezone.now()
    updated = WebhookRejection.objects.filter(reason=reason).update(
        count=F("count") + 1, last_at=now
    )
    if not updated:
        try:
            with transaction.atomic():
                WebhookRejection.objects.create(reason=reason, count=1, last_at=now)
        except IntegrityError:  # another request created it first
            WebhookRejection.objects.filter(reason=reason).update(count=F("count") + 1, last_at=now)
