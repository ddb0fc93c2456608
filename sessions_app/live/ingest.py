"""Storing VideoDB's real-time events exactly once, each with a session sequence number.

Interim transcript text is not stored: it is superseded within a second, so the relay
shows it without the database (``live/interim.py``); ``store`` takes final text only.

Every path that brings an event in (the relay's socket, its backfill, alert callbacks)
stores it with ``store``, so idempotency is written once: the unique constraints in
models.py turn a repeat into "nothing new", and only a real change takes a sequence number
(which a reconnecting browser uses to ask for what it missed) and a live update. A new final
line also asks whether the live brief is due (``intelligence.schedule``). An alert callback
is the one exception: anyone holding its URL could post it, so ``hold_alert`` keeps it
unconfirmed and unseen until the socket's copy or VideoDB's records confirm it.
"""

from __future__ import annotations

import functools
import logging

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from sessions_app import gateway
from sessions_app.intelligence import schedule
from sessions_app.live import broadcast, events
from sessions_app.live.events import AlertInput, Event, InsightInput, TranscriptInput
from sessions_app.models import (
    Alert,
    CaptureSession,
    Insight,
    RTStream,
    StreamOperation,
    TranscriptSegment,
)

logger = logging.getLogger(__name__)


def find_stream(rtstream_id: str) -> RTStream | None:
    """The stream an event names, with its session (which the rendering needs)."""
    return RTStream.objects.select_related("session").filter(videodb_id=rtstream_id).first()


def store(
    stream: RTStream, event: Event, *, heard_now: bool = False
) -> broadcast.LiveUpdate | None:
    """Store one event of ``stream`` and render its live update; None when it changed
    nothing (a repeat, an alert stored by the other path).

    ``heard_now``: the event just arrived over the socket, so the stream is alive (the health
    panel's "last event"); a backfilled record or a callback says nothing about now. The
    relay asks for it at most once per ``relay.LIVENESS_SECONDS`` per stream.
    """
    if isinstance(event, TranscriptInput) and not event.is_final:
        raise ValueError("interim text is not stored: the relay shows it (live/interim.py)")
    if heard_now:
        touch_stream(stream.pk, event.end_ms)
    item: TranscriptSegment | Insight | Alert | None
    if isinstance(event, TranscriptInput):
        item = _record_transcript(stream, event)
    elif isinstance(event, InsightInput):
        item = _record_insight(stream, event)
    else:
        item = _record_alert(stream, event)
    if item is None:
        return None
    item.stream = stream
    if isinstance(item, TranscriptSegment) and item.is_final:
        _notice_speech(stream.session)
    return broadcast.message(item, stream.session)


def _notice_speech(session: CaptureSession) -> None:
    """New final speech may make the live brief due (its refresh is enqueued on commit).
    Never at the line's expense: the line is stored, and its update must still go out."""
    try:
        schedule.after_final_speech(session)
    except Exception:
        logger.exception("could not check whether the brief of session %s is due", session.pk)


@functools.cache
def _next_seq_sql() -> str:
    """Written once per process: the statement is on the path of every stored item."""
    quote = connection.ops.quote_name
    table = quote(CaptureSession._meta.db_table)
    column = quote(CaptureSession._meta.get_field("last_seq").column)
    key = quote(CaptureSession._meta.pk.column)
    # Names from the model's own metadata, quoted; the id is a parameter.
    return f"UPDATE {table} SET {column} = {column} + 1 WHERE {key} = %s RETURNING {column}"  # noqa: S608


def next_seq(session_id: int) -> int:
    """Hand out the session's next sequence number. Call inside the storing transaction, so
    the number and the row it labels commit (or roll back) together. One statement (UPDATE
    ... RETURNING, on PostgreSQL and SQLite alike): it is on the path of every stored item."""
    with connection.cursor() as cursor:
        cursor.execute(_next_seq_sql(), [session_id])
        row = cursor.fetchone()
    if row is None:
        raise CaptureSession.DoesNotExist(f"no session {session_id}")
    return row[0]


def _record_alert(stream: RTStream, event: AlertInput) -> Alert | None:
    """Store an alert the socket reported, once. Returns it if this shows it for the first
    time: new, or held unconfirmed since a callback reported it. None if it was shown."""
    held = Alert.all_objects.filter(stream=stream, label=event.label, start_ms=event.start_ms)
    if (alert := held.first()) is not None:
        return _confirm(alert)
    return _create_alert(stream, event, confirmed=True)


def _create_alert(stream: RTStream, event: AlertInput, *, confirmed: bool) -> Alert | None:
    rule = stream.session.alert_rules.filter(label=event.label).first()
    try:
        with transaction.atomic():
            return Alert.all_objects.create(
                session_id=stream.session_id,
                stream=stream,
                rule=rule,
                label=event.label,
                triggered=event.triggered,
                confidence=event.confidence,
                text=event.text,
                start_ms=event.start_ms,
                end_ms=max(event.end_ms, event.start_ms),
                confirmed=confirmed,
                # An unconfirmed alert takes its number when it is confirmed: a browser
                # must never see a number it cannot be sent.
                seq=next_seq(stream.session_id) if confirmed else 0,
            )
    except IntegrityError:  # the other path stored it between our look and our write
        return None


def _confirm(alert: Alert) -> Alert | None:
    """Show a held alert: mark it confirmed with a new sequence number. None if it already
    was (by the other path, or a moment ago)."""
    with transaction.atomic():
        locked = Alert.all_objects.select_for_update().filter(pk=alert.pk, confirmed=False)
        row = locked.first()
        if row is None:
            return None
        row.confirmed = True
        row.seq = next_seq(row.session_id)
        row.save(update_fields=["confirmed", "seq"])
    return row


# --- alerts that only a callback reported ----------------------------------------------------


def hold_alert(stream: RTStream, event: AlertInput) -> Alert | None:
    """Keep an alert that an alert callback reported, unconfirmed and not shown: anyone who
    holds the callback's URL could have sent it. Returns it if newly held, None if it was
    stored before (shown, or already held)."""
    held = Alert.all_objects.filter(stream=stream, label=event.label, start_ms=event.start_ms)
    if held.exists():
        return None
    return _create_alert(stream, event, confirmed=False)


# Index records are whole seconds or scenes long; an alert's moment lies within one, give or
# take this much.
CONFIRM_SLACK_MS = 1000


class NotConfirmedYet(Exception):
    """VideoDB's records do not (yet) show a held alert."""


def confirm_from_videodb(alert_id: int) -> broadcast.LiveUpdate | None:
    """Confirm a held alert against VideoDB's own record: the index our alert for that label
    watches on that stream has a record at the alert's moment (an alert is raised on an
    index record, which VideoDB writes when the index's window closes, so a moment after
    the callback). Returns the live update when this confirmed it; None if it is gone or
    was confirmed already. Raises ``NotConfirmedYet`` while VideoDB does not show it; the
    task asks again a few times over minutes, then leaves it unconfirmed and unseen."""
    alert = Alert.all_objects.select_related("stream__session").filter(pk=alert_id).first()
    if alert is None or alert.confirmed or alert.stream is None:
        return None
    if not _videodb_shows(alert):
        raise NotConfirmedYet(f"VideoDB shows no {alert.label!r} record at {alert.start_ms}")
    confirmed = _confirm(alert)
    if confirmed is None:
        return None
    confirmed.stream = alert.stream
    return broadcast.message(confirmed, alert.stream.session)


def _videodb_shows(alert: Alert) -> bool:
    watched = (
        StreamOperation.objects.filter(
            stream=alert.stream, kind=StreamOperation.Kind.ALERT, alert_rule__label=alert.label
        )
        .exclude(index_id="")
        .values_list("index_id", flat=True)
    )
    for index_id in set(watched):
        for raw in gateway.index_records(alert.stream.videodb_id, index_id):
            try:
                record = events.index_record(raw, "audio", index_id)
            except events.EventError:
                continue
            if (
                record.start_ms <= alert.end_ms + CONFIRM_SLACK_MS
                and record.end_ms >= alert.start_ms - CONFIRM_SLACK_MS
            ):
                return True
    return False


def touch_stream(stream_id: int, event_end_ms: int) -> None:
    """Record that the stream is alive: the health panel's "last event" and its age."""
    RTStream.objects.filter(pk=stream_id).update(
        last_event_ms=event_end_ms, last_event_received_at=timezone.now()
    )


def _record_transcript(stream: RTStream, event: TranscriptInput) -> TranscriptSegment | None:
    """Store a final line. Returns the segment if this changed it, None for a repeat.

    A row an older version stored for interim text at the same start time is finalised in
    place (its id, which a citation may name, is kept).
    """
    end_ms = max(event.end_ms, event.start_ms)
    try:
        # The usual case, a new line, is tried first: one short transaction (the number, the
        # row, its search entry) and no lookup. A line already stored at this start (a
        # repeat, another path's copy, an old interim row) fails the unique constraint, and
        # the whole attempt, its number included, rolls back.
        with transaction.atomic():
            return TranscriptSegment.objects.create(
                session_id=stream.session_id,
                stream=stream,
                text=event.text,
                is_final=True,
                start_ms=event.start_ms,
                end_ms=end_ms,
                seq=next_seq(stream.session_id),
            )
    except IntegrityError as exc:
        conflict = exc
    with transaction.atomic():
        segment = (
            TranscriptSegment.objects.select_for_update()
            .filter(stream=stream, start_ms=event.start_ms)
            .first()
        )
        if segment is None:  # not a line at this start: some other constraint refused it
            raise conflict
        segment.stream = stream  # already loaded: saves a query when search indexes it
        if (segment.text, segment.is_final, segment.end_ms) == (event.text, True, end_ms):
            return None
        segment.text = event.text
        segment.is_final = True
        segment.end_ms = end_ms
        segment.seq = next_seq(stream.session_id)
        segment.save(update_fields=["text", "is_final", "end_ms", "seq", "updated_at"])
        return segment


def _record_insight(stream: RTStream, event: InsightInput) -> Insight | None:
    """Store a scene or audio index result once. Returns it if new, None for a repeat."""
    lookup = {"stream": stream, "kind": event.kind, "start_ms": event.start_ms}
    if Insight.objects.filter(**lookup).exists():
        return None
    try:
        with transaction.atomic():
            return Insight.objects.create(
                session_id=stream.session_id,
                index_id=event.index_id,
                text=event.text,
                end_ms=max(event.end_ms, event.start_ms),
                seq=next_seq(stream.session_id),
                **lookup,
            )
    except IntegrityError:
        return None
