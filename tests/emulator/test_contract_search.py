"""The real SDK against the emulator: legacy search over exported sessions, player pages."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from videodb.exceptions import InvalidRequestError
from videodb.search import SearchResult
from videodb.video import Video

from .helpers import start_active_meeting, streams_by_category

OBJECTION = "The enterprise tier costs too much for us."


def _play_tiny_meeting(emu, conn, **session_kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """The tiny meeting with transcripts on both audio streams and a visual index on the
    screen, played to the end and stopped (not exported)."""
    # A quarter speed until everything is started: nothing is said for the first 4 s.
    cap = start_active_meeting(emu, conn, speed=0.25, **session_kwargs)
    streams = streams_by_category(conn, cap.id)
    streams["mic"].start_transcript()
    streams["system_audio"].start_transcript()
    streams["screen"].index_visuals(
        prompt="Describe the screen", batch_config={"type": "time", "value": 2, "frame_count": 1}
    )
    emu.control.set_speed(cap.id, 40.0)
    emu.control.wait_for_meeting(cap.id)
    emu.control.wait_for_status(cap.id, "stopped")
    return conn.get_capture_session(cap.id), streams


def _get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local emulator
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_collection_search_finds_a_phrase_in_an_exported_session_at_seconds_from_its_start(
    emu, conn
):
    cap, streams = _play_tiny_meeting(emu, conn, metadata={"title": "Pricing call"})
    export = cap.export()

    # What the app calls: Search V2's entry point routes legacy options to legacy_search.
    result = conn.get_collection().search(
        "enterprise tier costs", search_type="semantic", index_type="spoken_word"
    )
    assert isinstance(result, SearchResult)
    best = result.get_shots()[0]
    assert (best.video_id, best.text, best.search_score) == (export["video_id"], OBJECTION, 1.0)
    assert (best.video_title, best.video_length) == ("Pricing call", export["duration"])
    assert best.metadata == {
        "source": "transcript",
        "rtstream_id": streams["system_audio"].id,
        "rtstream_name": "system_audio:default",
    }
    # Video time 0 is the moment the session started, as the export's duration counts it.
    said = next(
        s for s in streams["system_audio"].get_transcript()["segments"] if s["text"] == OBJECTION
    )
    started_ms = emu.server.core.store.sessions[cap.id].started_at_ms
    assert best.start == round((said["start"] - started_ms) / 1000, 3)
    assert best.end == round((said["end"] - started_ms) / 1000, 3)
    assert 0 < best.start < best.end <= export["duration"]


def test_a_session_is_searched_only_once_it_is_exported(emu, conn):
    cap, _ = _play_tiny_meeting(emu, conn)
    coll = conn.get_collection()
    assert coll.legacy_search("discount").get_shots() == []

    video_id = cap.export()["video_id"]
    shots = coll.legacy_search("discount").get_shots()
    assert [(s.video_id, s.text) for s in shots] == [
        (video_id, "We decided to offer a discount. I will send the quote.")
    ]


def test_results_honour_result_and_score_thresholds_and_sort_order(emu, conn):
    cap, _ = _play_tiny_meeting(emu, conn)
    cap.export()
    coll = conn.get_collection()
    # "quote pricing" scores 1/2 twice: "... the pricing page today", "... send the quote".
    both = coll.legacy_search("quote pricing", sort_docs_on="start").get_shots()
    assert [s.text for s in both] == [
        "Let's review the pricing page today.",
        "We decided to offer a discount. I will send the quote.",
    ]
    assert len(coll.legacy_search("quote pricing", result_threshold=1).get_shots()) == 1
    assert coll.legacy_search("quote pricing", score_threshold=0.9).get_shots() == []


def test_video_search_covers_spoken_words_and_the_visual_index(emu, conn):
    cap, streams = _play_tiny_meeting(emu, conn)
    video = Video(conn, id=cap.export()["video_id"], collection_id="default")

    spoken = video.search("quick answer", search_type="keyword", index_type="spoken_word")
    assert [s.text for s in spoken] == ["Great, thanks for the quick answer."]

    scenes = video.search("email draft quote", search_type="semantic", index_type="scene")
    assert scenes.get_shots(), "expected the screen's description to match"
    shot = scenes.get_shots()[0]
    assert shot.text == "Email draft titled 'Quote for Dana' is open."
    assert shot.metadata["source"] == "visual_index"
    assert shot.scene_index_id == streams["screen"].list_scene_indexes()[0].rtstream_index_id


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "'query' is required"),
        ({"query": "  "}, "'query' must be a non-empty string"),
        ({"query": 5}, "'query' must be a non-empty string"),
        ({"query": "x", "search_type": "fuzzy"}, "'search_type' must be one of semantic"),
        ({"query": "x", "search_type": "keyword"}, "collection search is semantic only"),
        ({"query": "x", "index_type": "faces"}, "'index_type' must be one of spoken_word"),
        ({"query": "x", "result_threshold": 0}, "'result_threshold' must be >= 1"),
        ({"query": "x", "score_threshold": "high"}, "'score_threshold' must be a number"),
        ({"query": "x", "filter": "speaker=Dana"}, "'filter' must be a list"),
        ({"query": "x", "sort_docs_on": "length"}, "'sort_docs_on' must be 'score' or 'start'"),
        ({"query": "x", "scene_index_id": "rtsi-1"}, "'scene_index_id' needs index_type 'scene'"),
    ],
)
def test_bad_collection_search_bodies_are_400_saying_what_is_wrong(conn, body, message):
    with pytest.raises(InvalidRequestError, match=message) as info:
        conn.post(path="collection/default/search", data=body)
    assert info.value.response.status_code == 400


def test_unknown_video_collection_or_scene_index_is_404(emu, conn):
    with pytest.raises(InvalidRequestError, match="video 'm-nope' not found") as info:
        Video(conn, id="m-nope", collection_id="default").search("x", search_type="semantic")
    assert info.value.response.status_code == 404
    with pytest.raises(InvalidRequestError, match="collection 'other' not found") as info:
        conn.post(path="collection/other/search", data={"query": "x"})
    assert info.value.response.status_code == 404

    cap, _ = _play_tiny_meeting(emu, conn)
    video = Video(conn, id=cap.export()["video_id"], collection_id="default")
    with pytest.raises(InvalidRequestError, match="scene index 'rtsi-nope' not found") as info:
        video.search("x", search_type="semantic", index_type="scene", scene_index_id="rtsi-nope")
    assert info.value.response.status_code == 404


def test_player_pages_show_where_they_start_and_may_be_framed(emu, conn):
    cap, streams = _play_tiny_meeting(emu, conn)
    export = cap.export()

    status, headers, page = _get(f"{export['player_url']}?t=83")
    assert status == 200
    assert f"Video length {export['duration']:.1f} s; starts at 83.0 s" in page
    assert "past the end" in page
    assert "X-Frame-Options" not in headers
    assert "frame-ancestors *" in headers["Content-Security-Policy"]
    assert "starts at the beginning" in _get(export["player_url"])[2].lower()
    for bad in ("<script>alert(1)</script>", "-1", "nan"):
        code, headers, body = _get(f"{export['player_url']}?{urllib.parse.urlencode({'t': bad})}")
        assert code == 400
        assert headers["Content-Type"].startswith("application/json")
        assert "'t' must be a number >= 0" in json.loads(body)["message"]

    mic = streams["mic"]
    clip = mic.generate_stream(start=1_795_441_045, end=1_795_441_050)
    status, _, page = _get(clip)
    assert status == 200
    assert "Clip starts at 2026-11-23T13:37:25.000Z (epoch ms 1795441045000)" in page
    assert "Clip length 5.0 s" in page


def test_player_for_an_unknown_video_or_stream_is_404(emu):
    for kind in ("video", "rtstream"):
        assert _get(f"{emu.base_url}/_media/player/{kind}/nope?t=3")[0] == 404


def test_clip_player_refuses_an_end_before_its_start(emu, conn):
    cap = start_active_meeting(emu, conn)
    mic = streams_by_category(conn, cap.id)["mic"]
    url = f"{emu.base_url}/_media/player/rtstream/{mic.id}?start=1795441050000&end=1795441045000"
    code, _, body = _get(url)
    assert (code, json.loads(body)["message"]) == (400, "'end' must be after 'start'")
