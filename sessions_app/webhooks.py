"""VideoDB's webhooks in: parse, authenticate, store, acknowledge, hand off.

The receiver never calls VideoDB and does no work beyond one short transaction, so it
answers in milliseconds; the lifecycle task does the rest. Refused calls (bad secret,
wrong session) get a 404 that says nothing about which part was wrong, and leave nothing
behind but a counter.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from sessions_app import deliveries, ingest, live, tasks
from sessions_app.deliveries import EnvelopeError
from sessions_app.models import RTStream

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024

# Under ASGI, Django runs each request's sync code on a thread of its own (asgiref makes one
# per request), and Celery keeps its result backend per thread: every ``delay()`` from a
# fresh thread builds a new Redis result backend just to return an AsyncResult we never
# read. That cost 1.2 ms of the 2 ms a publish took; from a long-lived thread a publish
# costs 0.6 ms. The caller still waits for the publish, so "enqueued on commit" holds.
# Threads are only started when all are busy, so normally one or two exist; the cap is
# for a broker outage, when each publish spends 0.1-0.3 s retrying before it gives up:
# 32 of them get through 100-300 deliveries/s, about what one Daphne process accepts.
_publisher = ThreadPoolExecutor(max_workers=32, thread_name_prefix="webhook-publish")


def _enqueue(delivery_id: int) -> None:
    _publisher.submit(tasks.process_delivery.delay, delivery_id).result()


def _error(status: int, message: str, **headers: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status, headers=headers)


def _read_body(request: HttpRequest) -> bytes | None:
    """The body, or None when it is larger than we accept."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        return None
    body = request.body
    return None if len(body) > MAX_BODY_BYTES else body


def _guard(request: HttpRequest) -> tuple[bytes | None, JsonResponse | None]:
    if request.method != "POST":
        return None, _error(405, "only POST is accepted here", Allow="POST")
    body = _read_body(request)
    if body is None:
        deliveries.count_rejection("too_large")
        return None, _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    return body, None


def _secret_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


@csrf_exempt
def lifecycle_webhook(request: HttpRequest, secret: str) -> JsonResponse:
    body, refusal = _guard(request)
    if refusal is not None:
        return refusal
    try:
        envelope = deliveries.parse_envelope(body)
    except EnvelopeError as exc:
        deliveries.count_rejection("malformed")
        return _error(400, f"not a VideoDB webhook envelope: {exc}")

    # One query answers both "which session, with which secret?" and "seen before?".
    claim = deliveries.find_claim(envelope)
    if claim is None or not _secret_matches(claim.webhook_secret, secret):
        deliveries.count_rejection("unknown_session_or_secret")
        return _error(404, "no such webhook")
    if claim.seen:
        return JsonResponse({"status": "duplicate"})

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
        return JsonResponse({"status": "duplicate"})
    outcome = "accepted" if envelope.is_known else "ignored"
    return JsonResponse({"status": outcome})


def _number(payload: dict, name: str, *, required: bool) -> float | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise EnvelopeError(f"'{name}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EnvelopeError(f"'{name}' must be a number")
    return float(value)


def parse_alert_callback(body: bytes) -> ingest.AlertInput:
    """VideoDB's alert callback: label, confidence, explanation, start/end in seconds."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"the body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise EnvelopeError("the body must be a JSON object")
    label = payload.get("label") or payload.get("event_label")
    if not isinstance(label, str) or not label.strip() or len(label) > 128:
        raise EnvelopeError("'label' must be a non-empty string of at most 128 characters")
    start = _number(payload, "start_time", required=True)
    end = _number(payload, "end_time", required=False)
    confidence = _number(payload, "confidence", required=False)
    if confidence is not None and not 0 <= confidence <= 1:
        raise EnvelopeError("'confidence' must be between 0 and 1")
    explanation = payload.get("explanation") or ""
    if not isinstance(explanation, str):
        raise EnvelopeError("'explanation' must be a string")
    start_ms = round(start * 1000)
    end_ms = round((end if end is not None else start) * 1000)
    if end_ms < start_ms:
        raise EnvelopeError("'end_time' must not be before 'start_time'")
    return ingest.AlertInput(
        label=label.strip(),
        start_ms=start_ms,
        end_ms=end_ms,
        triggered=True,
        confidence=confidence,
        text=explanation[:2000],
    )


@csrf_exempt
def alert_callback(request: HttpRequest, secret: str, rtstream_id: str) -> JsonResponse:
    body, refusal = _guard(request)
    if refusal is not None:
        return refusal
    try:
        event = parse_alert_callback(body)
    except EnvelopeError as exc:
        deliveries.count_rejection("malformed")
        return _error(400, f"not a VideoDB alert callback: {exc}")
    stream = RTStream.objects.select_related("session").filter(videodb_id=rtstream_id).first()
    if stream is None or not _secret_matches(stream.session.webhook_secret, secret):
        deliveries.count_rejection("unknown_session_or_secret")
        return _error(404, "no such webhook")
    alert, created = ingest.record_alert(stream, event)
    if created:
        # Whichever path stores an alert first shows it: here the callback beat the socket,
        # whose copy the relay will find stored and not push again.
        alert.stream = stream
        try:
            live.publish(stream.session, [live.message(alert, stream.session)])
        except Exception:  # stored is what matters; a reload or a resume shows it anyway
            logger.exception("could not push alert %s to the live pages", alert.pk)
    return JsonResponse({"status": "stored" if created else "duplicate"})
