"""What VideoDB sends us about a stream, checked and turned into plain values.

Three ways bring the same kinds of event in: the relay's socket (``parse_socket_event``),
the relay's backfill through the API (``transcript_record``, ``index_record``) and the alert
callbacks (``parse_alert_callback``). Each is checked here, with one number check and one
JSON-object check (the webhook envelope uses it too), and refused with an ``EventError``
that says what is wrong. Storing the values is ``ingest``'s job.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MAX_TEXT = 20_000
MAX_ALERT_TEXT = 2000
MAX_LABEL = 128
# The largest magnitude of any number we store: epoch milliseconds up to the year 5138, far
# below what a 64-bit column or a datetime holds (1e308 or a 4,000-digit integer would
# overflow both, and the arithmetic on the way).
MAX_MS = 10**14
MAX_SECONDS = MAX_MS // 1000
INDEX_CHANNELS = {"audio_index": "audio", "visual_index": "visual", "scene_index": "visual"}


class EventError(ValueError):
    """Input that does not have the documented shape; the message says why."""


@dataclass(frozen=True)
class TranscriptInput:
    text: str
    is_final: bool
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class InsightInput:
    kind: str  # Insight.Kind
    text: str
    start_ms: int
    end_ms: int
    index_id: str = ""


@dataclass(frozen=True)
class AlertInput:
    label: str
    start_ms: int
    end_ms: int
    triggered: bool = True
    confidence: float | None = None
    text: str = ""


Event = TranscriptInput | InsightInput | AlertInput


@dataclass(frozen=True)
class SocketEvent:
    channel: str
    rtstream_id: str
    payload: Event


# --- the shared checks ---------------------------------------------------------------------


def json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"the body is not valid JSON ({exc})") from None
    except RecursionError:
        raise EventError("the body nests too deeply") from None
    if not isinstance(payload, dict):
        raise EventError("the body must be a JSON object")
    return payload


def number(value: object, field: str, *, meaning: str = "a number", limit: float = MAX_MS) -> float:
    """``value`` if it is a finite number (not a boolean) of magnitude at most ``limit``; an
    error naming ``field`` if not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventError(f"{field} must be {meaning}")
    # Compared as it is: math.isfinite() of a huge int raises OverflowError.
    if isinstance(value, float) and not math.isfinite(value):
        raise EventError(f"{field} must be {meaning}")
    if abs(value) > limit:
        raise EventError(f"{field} must be {meaning} of at most {limit:g}")
    return value


def _confidence(value: object, field: str) -> float | None:
    if value is None:
        return None
    if not 0 <= number(value, field) <= 1:
        raise EventError(f"{field} must be between 0 and 1")
    return value


# --- the socket and the backfill: epoch milliseconds under "data" --------------------------


def _ms(data: dict[str, Any], name: str, *, default: int | None = None) -> int:
    field = f"data.{name}"
    return int(number(data.get(name, default), field, meaning="a number of epoch milliseconds"))


def _text(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise EventError(f"data.{name} must be a non-empty string")
    return value[:MAX_TEXT]


def transcript_record(data: dict[str, Any], *, is_final: bool = True) -> TranscriptInput:
    """A transcript segment: from the socket, or (final) from ``get_transcript``."""
    start = _ms(data, "start")
    return TranscriptInput(_text(data, "text"), is_final, start, _ms(data, "end", default=start))


def index_record(data: dict[str, Any], kind: str, index_id: str) -> InsightInput:
    """A scene or audio index result: from the socket, or from the index's records."""
    start = _ms(data, "start")
    end = _ms(data, "end", default=start)
    return InsightInput(kind, _text(data, "text"), start, end, index_id[:64])


def _socket_alert(data: dict[str, Any]) -> AlertInput:
    label = data.get("label") or data.get("event_label")
    if not isinstance(label, str) or not label.strip():
        raise EventError("data.label must be a non-empty string")
    start = _ms(data, "start")
    triggered = data.get("triggered", True)
    text = _text(data, "text", required=False) or _text(data, "explanation", required=False)
    return AlertInput(
        label=label.strip()[:MAX_LABEL],
        start_ms=start,
        end_ms=_ms(data, "end", default=start),
        triggered=triggered if isinstance(triggered, bool) else True,
        confidence=_confidence(data.get("confidence"), "data.confidence"),
        text=text[:MAX_ALERT_TEXT],
    )


def parse_socket_event(event: Any) -> SocketEvent | None:
    """Check one socket message. None for messages the relay does not store (lifecycle
    events, which the webhooks carry durably); EventError for malformed ones."""
    if not isinstance(event, dict):
        raise EventError("the message is not a JSON object")
    channel = event.get("channel")
    if channel == "capture_session" or ("raw" in event and "channel" not in event):
        return None
    if channel not in {"transcript", "alert", *INDEX_CHANNELS}:
        raise EventError(f"unknown channel {channel!r}")
    rtstream_id = event.get("rtstream_id")
    if not isinstance(rtstream_id, str) or not rtstream_id:
        raise EventError("rtstream_id must be a non-empty string")
    data = event.get("data")
    if not isinstance(data, dict):
        raise EventError("data must be an object")
    payload: Event
    if channel == "transcript":
        is_final = data.get("is_final", False)
        if not isinstance(is_final, bool):
            raise EventError("data.is_final must be true or false")
        payload = transcript_record(data, is_final=is_final)
    elif channel in INDEX_CHANNELS:
        index_id = event.get("rtstream_index_id") or event.get("index_id") or ""
        payload = index_record(data, INDEX_CHANNELS[channel], str(index_id))
    else:
        payload = _socket_alert(data)
    return SocketEvent(channel, rtstream_id, payload)


# --- alert callbacks: seconds at the top level ---------------------------------------------


def _seconds(payload: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise EventError(f"'{name}' is required")
        return None
    return number(value, f"'{name}'", meaning="a number of seconds", limit=MAX_SECONDS)


def parse_alert_callback(body: bytes) -> AlertInput:
    """VideoDB's alert callback: label, confidence, explanation, start/end in seconds."""
    payload = json_object(body)
    label = payload.get("label") or payload.get("event_label")
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
        raise EventError(f"'label' must be a non-empty string of at most {MAX_LABEL} characters")
    start = _seconds(payload, "start_time", required=True)
    end = _seconds(payload, "end_time", required=False)
    confidence = _confidence(payload.get("confidence"), "'confidence'")
    explanation = payload.get("explanation") or ""
    if not isinstance(explanation, str):
        raise EventError("'explanation' must be a string")
    start_ms = round(start * 1000)
    end_ms = round((end if end is not None else start) * 1000)
    if end_ms < start_ms:
        raise EventError("'end_time' must not be before 'start_time'")
    return AlertInput(
        label=label.strip(),
        start_ms=start_ms,
        end_ms=end_ms,
        triggered=True,
        confidence=confidence,
        text=explanation[:MAX_ALERT_TEXT],
    )
