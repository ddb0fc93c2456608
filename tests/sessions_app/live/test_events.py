"""Checking what VideoDB sends about a stream: socket events, backfilled records and alert
callbacks become plain values, and anything else is refused with the reason."""

from __future__ import annotations

import json

import pytest

from sessions_app.live import events
from sessions_app.live.events import EventError, parse_socket_event


class TestSocketEvents:
    def event(self, channel: str = "transcript", **data) -> dict:
        body = {"text": "Let's review", "is_final": False, "start": 1000, "end": 1500}
        body.update(data)
        return {"channel": channel, "rtstream_id": "rts-1", "rtstream_name": "mic:default",
                "data": body}  # fmt: skip

    def test_a_transcript_event_becomes_a_transcript_input(self) -> None:
        parsed = parse_socket_event(self.event(is_final=True))
        assert parsed.rtstream_id == "rts-1"
        assert parsed.payload == events.TranscriptInput("Let's review", True, 1000, 1500)

    @pytest.mark.parametrize(
        ("channel", "kind"), [("visual_index", "visual"), ("scene_index", "visual"),
                              ("audio_index", "audio")],
    )  # fmt: skip
    def test_index_channels_become_insights_of_their_kind(self, channel: str, kind: str) -> None:
        assert parse_socket_event(self.event(channel)).payload.kind == kind

    def test_an_alert_keeps_label_and_confidence(self) -> None:
        parsed = parse_socket_event(self.event("alert", label="pricing", confidence=0.9))
        assert (parsed.payload.label, parsed.payload.confidence) == ("pricing", 0.9)

    def test_lifecycle_messages_are_left_to_the_webhooks(self) -> None:
        assert parse_socket_event({"channel": "capture_session", "event": "x"}) is None
        assert parse_socket_event({"raw": "not json"}) is None

    @pytest.mark.parametrize(
        ("event", "message"),
        [
            ([1, 2], "not a JSON object"),
            ({"channel": "gossip"}, "unknown channel"),
            ({"channel": "transcript", "data": {}}, "rtstream_id"),
            ({"channel": "transcript", "rtstream_id": "r", "data": "x"}, "data must be an object"),
            ({"channel": "transcript", "rtstream_id": "r", "data": {"text": "a", "start": "x"}},
             "data.start must be a number of epoch milliseconds"),
            ({"channel": "transcript", "rtstream_id": "r", "data": {"text": "a", "start": 1e400}},
             "data.start must be a number"),
            ({"channel": "transcript", "rtstream_id": "r", "data": {"text": "a", "start": True}},
             "data.start must be a number"),
            ({"channel": "transcript", "rtstream_id": "r",
              "data": {"text": "a", "start": 1, "is_final": "yes"}}, "is_final"),
            ({"channel": "transcript", "rtstream_id": "r", "data": {"text": "", "start": 1}},
             "data.text"),
            ({"channel": "alert", "rtstream_id": "r", "data": {"start": 1, "confidence": 0.5}},
             "data.label"),
            ({"channel": "alert", "rtstream_id": "r",
              "data": {"label": "x", "start": 1, "confidence": 7}},
             "data.confidence must be between 0 and 1"),
        ],
    )  # fmt: skip
    def test_malformed_events_are_refused_with_the_reason(self, event, message: str) -> None:
        with pytest.raises(EventError, match=message):
            parse_socket_event(event)


class TestBackfilledRecords:
    def test_a_transcript_record_is_final_and_ends_at_its_start_without_an_end(self) -> None:
        record = events.transcript_record({"text": "Done.", "start": 5000})
        assert record == events.TranscriptInput("Done.", True, 5000, 5000)

    def test_an_index_record_keeps_its_kind_and_index(self) -> None:
        record = events.index_record({"text": "Slides", "start": 1, "end": 9}, "visual", "idx-1")
        assert record == events.InsightInput("visual", "Slides", 1, 9, "idx-1")

    def test_a_record_without_text_is_refused(self) -> None:
        with pytest.raises(EventError, match=r"data\.text"):
            events.index_record({"start": 1}, "audio", "idx-1")


class TestAlertCallbacks:
    def body(self, **change) -> bytes:
        payload = {"label": "pricing", "confidence": 0.92, "explanation": "Price list shown",
                   "start_time": 1710000045.1, "end_time": 1710000047.8}  # fmt: skip
        payload.update(change)
        return json.dumps(payload).encode()

    def test_seconds_become_milliseconds(self) -> None:
        alert = events.parse_alert_callback(self.body())
        assert alert == events.AlertInput(
            "pricing", 1710000045100, 1710000047800, True, 0.92, "Price list shown"
        )

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "the body is not valid JSON"),
            (b"\xff", "the body is not valid JSON"),
            (b"[1]", "the body must be a JSON object"),
            (b'{"label": "x", "start_time": "soon"}', "'start_time' must be a number"),
            (b'{"label": "x", "start_time": 1, "end_time": false}', "'end_time' must be a number"),
        ],
    )
    def test_malformed_bodies_are_refused_with_the_reason(self, body: bytes, message: str) -> None:
        with pytest.raises(EventError, match=message):
            events.parse_alert_callback(body)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "1", None])
def test_one_number_check_refuses_what_is_not_a_finite_number(value) -> None:
    with pytest.raises(EventError, match="'x' must be a number"):
        events.number(value, "'x'")
