"""VideoDB's webhooks in: parse, authenticate, store, acknowledge, hand off.

The receiver never calls VideoDB and does no work beyond one short transaction, so it
answers in milliseconds; the lifecycle task does the rest. Refused calls (bad secret,
wrong session) get a 404 that says nothing about which part was wrong, and leave nothing
behind but a counter.
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from sessions_app import tasks
from sessions_app.capture import deliveries, repeats
from sessions_app.live import events, ingest
from sessions_app.models import url_secret_ok


def _enqueue(delivery_id: int) -> None:
    tasks.process_delivery.delay(delivery_id)


def duplicate_answer() -> JsonResponse:
    """The answer to a copy of a delivery already stored."""
    return JsonResponse({"status": "duplicate"})


def known_repeat(body: bytes, secret: str) -> bool:
    """Whether this lifecycle call copies a delivery this process has seen stored under the
    same secret (capture/repeats.py): the answer is "duplicate", and needs no database."""
    if len(body) > settings.WEBHOOK_MAX_BODY_BYTES:
        return False
    try:
        envelope = deliveries.parse_envelope(body)
    except events.EventError:
        return False
    return repeats.known(secret, envelope.capture_session_id, envelope.dedupe_key)


def _error(status: int, message: str, **headers: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status, headers=headers)


def _read_body(request: HttpRequest) -> bytes | None:
    """The body, or None when it is larger than we accept. Under Daphne a larger body never
    gets here (copilot/bodylimit.py refuses it at the socket); this holds for any server."""
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.body
    return None if len(body) > limit else body


def _guard(request: HttpRequest) -> tuple[bytes | None, JsonResponse | None]:
    if request.method != "POST":
        return None, _error(405, "only POST is accepted here", Allow="POST")
    body = _read_body(request)
    if body is None:
        deliveries.count_rejection("too_large")
        return None, _error(413, f"the body is larger than {settings.WEBHOOK_MAX_BODY_BYTES} bytes")
    return body, None


@csrf_exempt
def lifecycle_webhook(request: HttpRequest, secret: str) -> JsonResponse:
    body, refusal = _guard(request)
    if refusal is not None:
        return refusal
    try:
        envelope = deliveries.parse_envelope(body)
    except events.EventError as exc:
        deliveries.count_rejection("malformed")
        return _error(400, f"not a VideoDB webhook envelope: {exc}")
    remembered = (secret, envelope.capture_session_id, envelope.dedupe_key)
    if repeats.known(*remembered):
        return duplicate_answer()

    # One query answers both "which session, with which secret?" and "seen before?".
    claim = deliveries.find_claim(envelope)
    if claim is None or not url_secret_ok(claim.webhook_secret, "lifecycle", secret):
        deliveries.count_rejection("unknown_session_or_secret")
        return _error(404, "no such webhook")
    if claim.seen:
        repeats.remember(*remembered)
        return duplicate_answer()

    try:
        # The outermost atomic block: BEGIN, INSERT, COMMIT and no savepoint.
        with transaction.atomic():
            delivery_id = deliveries.insert(claim.session_id, envelope, body.decode("utf-8"))
            if envelope.is_known:
                # robust: if the broker is down the delivery is still committed and
                # answered; the reconciler enqueues it once the broker is back.
                transaction.on_commit(partial(_enqueue, delivery_id), robust=True)
    except IntegrityError:
        # A copy of this delivery was stored between our lookup and our insert. Anything
        # else (say, the session deleted meanwhile) is a real error: answer 500 so the
        # sender retries, rather than acknowledge a delivery we did not store.
        if not deliveries.is_stored(envelope):
            raise
        repeats.remember(*remembered)
        return duplicate_answer()
    repeats.remember(*remembered)  # committed: the block above is the outermost
    outcome = "accepted" if envelope.is_known else "ignored"
    return JsonResponse({"status": outcome})


@csrf_exempt
def alert_callback(request: HttpRequest, secret: str, rtstream_id: str) -> JsonResponse:
    body, refusal = _guard(request)
    if refusal is not None:
        return refusal
    try:
        event = events.parse_alert_callback(body)
    except events.EventError as exc:
        deliveries.count_rejection("malformed")
        return _error(400, f"not a VideoDB alert callback: {exc}")
    stream = ingest.find_stream(rtstream_id)
    purpose = f"alert:{rtstream_id}"
    if stream is None or not url_secret_ok(stream.session.webhook_secret, purpose, secret):
        deliveries.count_rejection("unknown_session_or_secret")
        return _error(404, "no such webhook")
    # Anyone holding this URL can post here, so the alert is kept unconfirmed and shown only
    # once the socket brings the same alert or VideoDB's records show it (the task).
    with transaction.atomic():
        held = ingest.hold_alert(stream, event)
        if held is None:  # stored before, by an earlier callback or by the relay
            return duplicate_answer()
        transaction.on_commit(partial(_confirm_alert, held.pk), robust=True)
    return JsonResponse({"status": "unconfirmed"})


def _confirm_alert(alert_id: int) -> None:
    tasks.confirm_alert.delay(alert_id)
