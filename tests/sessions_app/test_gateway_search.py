"""The gateway's search and clip functions against the emulator, through the real SDK: a
phrase said in a meeting is found on its stream (wall-clock time) and in the exported video
(offset from its start), a clip of it plays, and VideoDB's refusals arrive as gateway
errors."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

import pytest
from videodb.exceptions import InvalidRequestError

from sessions_app import gateway
from tests.conftest import TINY_MEETING

OBJECTION = "The enterprise tier costs too much for us."


@dataclass(frozen=True)
class Meeting:
    session_id: str
    streams: dict[str, str]  # stream name -> rtstream id
    started_ms: int  # the session's start on VideoDB's clock: the exported video's time 0
    stopped_ms: int
    export: gateway.ExportResult


@pytest.fixture
def meeting(videodb) -> Meeting:
    """The tiny meeting, transcribed on both audio streams, stopped and exported, all through
    the gateway; the emulator plays the desktop client."""
    remote = gateway.create_capture_session(
        end_user_id="user-1", callback_url="", metadata={"title": "Pricing call"}
    )
    # Slow until everything is started: the script's first second is silent, so at a quarter
    # speed nothing is said for four seconds.
    videodb.control.simulate(remote.id, TINY_MEETING, speed=0.25)
    videodb.control.wait_for_status(remote.id, "active")
    streams = {s.name: s.id for s in gateway.get_capture_session(remote.id).streams}
    for name in ("mic:default", "system_audio:default"):
        gateway.start_transcript(streams[name], ws_connection_id=None)
    # Indexes with 2-second windows (the gateway's own are longer than this meeting), so
    # that each stream has insight or scene records to find too.
    coll = videodb.connect().get_collection()
    coll.get_rtstream(streams["mic:default"]).index_audio(
        prompt="Decisions", batch_config={"type": "time", "value": 2}
    )
    coll.get_rtstream(streams["display:1"]).index_visuals(
        prompt="The screen", batch_config={"type": "time", "value": 2, "frame_count": 1}
    )
    videodb.control.set_speed(remote.id, 40)
    videodb.control.wait_for_meeting(remote.id)
    videodb.control.wait_for_status(remote.id, "stopped")
    export = gateway.export_capture_session(remote.id)
    stored = videodb.server.core.store.sessions[remote.id]
    return Meeting(remote.id, streams, stored.started_at_ms, stored.stopped_at_ms, export)


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local emulator
        return response.status, response.read().decode()


def test_search_stream_finds_a_phrase_with_its_wall_clock_time_in_epoch_ms(meeting) -> None:
    system = meeting.streams["system_audio:default"]
    hits = gateway.search_stream(system, "enterprise tier costs")
    best = hits[0]
    assert (best.text, best.score, best.source) == (OBJECTION, 1.0, "transcript")
    assert (best.rtstream_id, best.video_id) == (system, "")
    assert meeting.started_ms < best.start_ms < best.end_ms <= meeting.stopped_ms


def test_search_stream_says_whether_a_hit_is_what_was_said_heard_about_or_seen(meeting) -> None:
    mic = gateway.search_stream(meeting.streams["mic:default"], "discount", limit=10)
    assert {h.source for h in mic} == {"transcript", "audio"}
    screen = gateway.search_stream(meeting.streams["display:1"], "email draft quote")
    assert screen[0].text == "Email draft titled 'Quote for Dana' is open."
    assert screen[0].source == "visual"


def test_stream_hit_times_in_epoch_seconds_are_read_as_milliseconds() -> None:
    # VideoDB documents stream search times as Unix timestamps; the emulator answers in ms.
    assert gateway._epoch_ms(1_795_441_045.25) == 1_795_441_045_250
    assert gateway._epoch_ms(1_795_441_045_250) == 1_795_441_045_250


def test_search_stream_returns_at_most_limit_hits_best_first(meeting) -> None:
    mic = meeting.streams["mic:default"]
    hits = gateway.search_stream(mic, "pricing discount quote", limit=1)
    assert [h.text for h in hits] == ["We decided to offer a discount. I will send the quote."]


def test_search_videos_finds_the_phrase_in_the_exported_video_as_an_offset_from_its_start(
    meeting,
) -> None:
    on_stream = gateway.search_stream(meeting.streams["system_audio:default"], "enterprise tier")
    hits = gateway.search_videos("enterprise tier costs")
    best = hits[0]
    assert (best.video_id, best.rtstream_id) == (meeting.export.video_id, "")
    assert (best.text, best.score, best.source) == (OBJECTION, 1.0, "transcript")
    # The same moment, measured from the video's start instead of the epoch (±1 ms: the
    # wire carries seconds with three decimals).
    assert abs(best.start_ms - (on_stream[0].start_ms - meeting.started_ms)) <= 1
    assert abs(best.end_ms - (on_stream[0].end_ms - meeting.started_ms)) <= 1
    assert 0 < best.start_ms < best.end_ms <= meeting.stopped_ms - meeting.started_ms


def test_a_search_that_matches_nothing_is_an_empty_list(meeting) -> None:
    assert gateway.search_stream(meeting.streams["mic:default"], "kubernetes") == []
    assert gateway.search_videos("kubernetes") == []


def test_stream_clip_returns_urls_that_play_from_the_moment_asked_for(meeting) -> None:
    hit = gateway.search_stream(meeting.streams["system_audio:default"], OBJECTION)[0]
    clip = gateway.stream_clip(hit.rtstream_id, hit.start_ms, hit.end_ms, title="Objection")
    status, page = fetch(clip.player_url)
    assert status == 200
    # Whole seconds go over the wire, widened outwards to cover the moment.
    assert f"(epoch ms {hit.start_ms // 1000 * 1000})" in page
    assert fetch(clip.stream_url)[0] == 200


def test_stream_clip_refuses_an_empty_range_before_calling_videodb(videodb) -> None:
    with pytest.raises(ValueError, match="must be after"):
        gateway.stream_clip("rts-any", 1_795_441_050_000, 1_795_441_050_000)


def test_an_unknown_stream_is_a_permanent_error_with_status_404(videodb) -> None:
    with pytest.raises(gateway.PermanentGatewayError) as searched:
        gateway.search_stream("rts-nope", "pricing")
    assert searched.value.status == 404
    assert "could not search the stream" in searched.value.message
    assert "rts-nope" in searched.value.message
    with pytest.raises(gateway.PermanentGatewayError) as clipped:
        gateway.stream_clip("rts-nope", 1_795_441_045_000, 1_795_441_050_000)
    assert clipped.value.status == 404


def test_an_outage_during_search_is_retryable(videodb) -> None:
    videodb.control.inject_faults(fail_count=10, status=503)
    with pytest.raises(gateway.RetryableGatewayError):
        gateway.search_videos("pricing")
    with pytest.raises(gateway.RetryableGatewayError):
        gateway.search_stream("rts-any", "pricing")


def test_a_bad_query_is_a_permanent_error_naming_the_problem(videodb) -> None:
    with pytest.raises(gateway.PermanentGatewayError) as refused:
        gateway.search_videos("")
    assert refused.value.status == 400
    assert "'query'" in refused.value.message


def test_videodb_answering_no_results_found_is_an_empty_list_not_an_error(
    videodb, monkeypatch
) -> None:
    def no_results(*args: object, **kwargs: object) -> None:
        raise InvalidRequestError("Invalid request: No results found")

    monkeypatch.setattr("videodb.rtstream.RTStream.search", no_results)
    monkeypatch.setattr("videodb.collection.Collection.legacy_search", no_results)
    assert gateway.search_stream("rts-any", "pricing") == []
    assert gateway.search_videos("pricing") == []
