"""The relay against the emulator: every event stored once, and nothing missing at the end
even when VideoDB's socket drops in the middle of the meeting."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from sessions_app import capture, lifecycle
from sessions_app.models import (
    CaptureSession,
    Insight,
    RelayConnection,
    StreamOperation,
    TranscriptSegment,
)
from sessions_app.relay import EventError, Relay, parse_event
from tests.conftest import TINY_MEETING, wait_until


class TestParsingEvents:
    def event(self, channel: str = "transcript", **data) -> dict:
        body = {"text": "Let's review", "is_final": False, "start": 1000, "end": 1500}
        body.update(data)
        return {"channel": channel, "rtstream_id": "rts-1", "rtstream_name": "mic:default",
                "data": body}  # fmt: skip

    def test_a_transcript_event_becomes_a_transcript_input(self) -> None:
        parsed = parse_event(self.event(is_final=True))
        assert (parsed.rtstream_id, parsed.payload.text, parsed.payload.is_final) == (
            "rts-1",
            "Let's review",
            True,
        )

    @pytest.mark.parametrize(
        ("channel", "kind"), [("visual_index", "visual"), ("scene_index", "visual"),
                              ("audio_index", "audio")],
    )  # fmt: skip
    def test_index_channels_become_insights_of_their_kind(self, channel: str, kind: str) -> None:
        assert parse_event(self.event(channel)).payload.kind == kind

    def test_an_alert_keeps_label_and_confidence(self) -> None:
        parsed = parse_event(self.event("alert", label="pricing", confidence=0.9))
        assert (parsed.payload.label, parsed.payload.confidence) == ("pricing", 0.9)

    def test_lifecycle_messages_are_left_to_the_webhooks(self) -> None:
        assert parse_event({"channel": "capture_session", "event": "x"}) is None
        assert parse_event({"raw": "not json"}) is None

    @pytest.mark.parametrize(
        ("event", "message"),
        [
            ([1, 2], "not a JSON object"),
            ({"channel": "gossip"}, "unknown channel"),
            ({"channel": "transcript", "data": {}}, "rtstream_id"),
            ({"channel": "transcript", "rtstream_id": "r", "data": "x"}, "data must be an object"),
            ({"channel": "transcript", "rtstream_id": "r", "data": {"text": "a", "start": "x"}},
             "data.start"),
            ({"channel": "transcript", "rtstream_id": "r",
              "data": {"text": "a", "start": 1, "is_final": "yes"}}, "is_final"),
            ({"channel": "transcript", "rtstream_id": "r", "data": {"text": "", "start": 1}},
             "data.text"),
            ({"channel": "alert", "rtstream_id": "r", "data": {"start": 1, "confidence": 0.5}},
             "data.label"),
            ({"channel": "alert", "rtstream_id": "r",
              "data": {"label": "x", "start": 1, "confidence": 7}}, "confidence"),
        ],
    )  # fmt: skip
    def test_malformed_events_are_refused_with_the_reason(self, event, message: str) -> None:
        with pytest.raises(EventError, match=message):
            parse_event(event)


class RunningRelay:
    """The relay's own event loop in a thread, as in ``manage.py relay``."""

    def __init__(self) -> None:
        self.relay = Relay(0)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop.run_until_complete(self.relay.run(self.stop))

    def start(self) -> None:
        self.thread.start()
        wait_until(
            lambda: RelayConnection.objects.exclude(connection_id="").exists(), 20, "the relay"
        )

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the relay did not stop"


@pytest.fixture
def relay(videodb, transactional_db) -> Iterator[RunningRelay]:
    running = RunningRelay()
    running.start()
    yield running
    running.close()


def remote_truth(videodb, session: CaptureSession) -> tuple[set, set]:
    """Everything VideoDB stored for the session: final segments and index records."""
    conn = videodb.connect()
    segments, records = set(), set()
    for stream in session.streams.all():
        remote = conn.get_collection().get_rtstream(stream.videodb_id)
        for segment in remote.get_transcript(page_size=1000).get("segments", []):
            segments.add((stream.videodb_id, segment["start"], segment["text"]))
        for index in remote.list_scene_indexes():
            kind = "audio" if index.extraction_type == "transcript" else "visual"
            for record in index.get_scenes(page_size=1000)["scenes"]:
                records.add((stream.videodb_id, kind, record["start"], record["text"]))
    return segments, records


def stored(session: CaptureSession) -> tuple[set, set]:
    segments = set(
        TranscriptSegment.objects.filter(session=session, is_final=True).values_list(
            "stream__videodb_id", "start_ms", "text"
        )
    )
    insights = set(
        Insight.objects.filter(session=session).values_list(
            "stream__videodb_id", "kind", "start_ms", "text"
        )
    )
    return segments, insights


@pytest.mark.timeout(120)
def test_nothing_is_missing_after_the_socket_drops_mid_meeting(relay, videodb, owner) -> None:
    session = capture.create_session(
        owner, title="Drop test", audio_prompt="Decisions", visual_prompt="Screen"
    )
    token = capture.mint_client_token(session).token
    videodb.control.simulate(session.videodb_id, TINY_MEETING, speed=1, client_token=token)
    videodb.control.wait_for_status(session.videodb_id, "active")
    lifecycle.sync_session(session.pk)
    lifecycle.start_ai(session.pk)
    first_id = relay.relay.connection_id
    assert set(StreamOperation.objects.values_list("ws_connection_id", flat=True)) == {first_id}

    # Someone speaks, then VideoDB's socket goes away mid-sentence.
    wait_until(lambda: TranscriptSegment.objects.filter(session=session).exists(), 20, "speech")
    videodb.control.drop_connection(first_id, abort=True)
    wait_until(lambda: relay.relay.connection_id not in ("", first_id), 20, "a new socket")

    videodb.control.wait_for_meeting(session.videodb_id, timeout=60)
    remote_segments, remote_records = remote_truth(videodb, session)
    assert remote_segments and remote_records
    wait_until(lambda: stored(session) == (remote_segments, remote_records), 30, "the backfill")

    # Replaced in place: no interim is left behind, and each start time is one row.
    assert not TranscriptSegment.objects.filter(session=session, is_final=False).exists()
    # The operations now deliver to the new socket.
    assert set(StreamOperation.objects.values_list("ws_connection_id", flat=True)) == {
        relay.relay.connection_id
    }
    assert relay.relay.stats["reconnects"] >= 1
    # Sequence numbers are unique across everything the session stored.
    seqs = [
        *TranscriptSegment.objects.filter(session=session).values_list("seq", flat=True),
        *Insight.objects.filter(session=session).values_list("seq", flat=True),
    ]
    assert len(seqs) == len(set(seqs))


@pytest.mark.timeout(60)
def test_junk_on_the_socket_is_refused_and_the_relay_carries_on(relay, videodb) -> None:
    for junk in (["x"], {"channel": "transcript"}, {"raw": "<html>"}, {"channel": "alert",
                 "rtstream_id": "rts-unknown", "data": {"label": "x", "start": 1}}):  # fmt: skip
        asyncio.run_coroutine_threadsafe(relay.relay.handle(junk), relay.loop).result(10)
    assert relay.relay.stats["invalid"] == 2
    assert relay.thread.is_alive()
