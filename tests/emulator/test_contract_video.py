"""The real SDK against the emulator: the exported video, as VideoDB's docs use it after
`capture_session.exported` (get it, index its spoken words, read its transcript, search it,
stream it, delete it), with content from what the session recorded."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from videodb.exceptions import InvalidRequestError
from videodb.search import SearchResponse, SearchResult
from videodb.video import Video

from .helpers import start_active_meeting, streams_by_category

SAID = [
    "Let's review the pricing page today.",
    "The enterprise tier costs too much for us.",
    "We decided to offer a discount. I will send the quote.",
    "Great, thanks for the quick answer.",
]
OBJECTION = SAID[1]


def _recorded_meeting(
    emu, conn, until: str = "stopped", **session_kwargs: Any
) -> tuple[Any, dict[str, Any]]:
    """The tiny meeting played to the end and stopped (``until`` that status), with live
    transcription on the mic only and a visual index on the screen."""
    # A quarter speed until everything is started: nothing is said for the first 4 s.
    cap = start_active_meeting(emu, conn, speed=0.25, **session_kwargs)
    streams = streams_by_category(conn, cap.id)
    streams["mic"].start_transcript()
    streams["screen"].index_visuals(
        prompt="Describe the screen", batch_config={"type": "time", "value": 2, "frame_count": 1}
    )
    emu.control.set_speed(cap.id, 20.0)
    emu.control.wait_for_meeting(cap.id)
    emu.control.wait_for_status(cap.id, until)
    return conn.get_capture_session(cap.id), streams


def _exported_video(emu, conn, **session_kwargs: Any) -> tuple[Video, dict[str, Any], Any]:
    cap, streams = _recorded_meeting(emu, conn, **session_kwargs)
    export = cap.export()
    return conn.get_collection().get_video(export["video_id"]), export, streams


def _started_ms(emu, session_id: str) -> int:
    return emu.server.core.store.sessions[session_id].started_at_ms


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local emulator
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_get_video_answers_the_exported_video_in_the_shape_the_sdk_reads(emu, conn):
    video, export, _ = _exported_video(emu, conn, metadata={"title": "Pricing call"})

    assert isinstance(video, Video)
    assert (video.id, video.collection_id, video.name) == (
        export["video_id"],
        "default",
        "Pricing call",
    )
    assert video.length == export["duration"] > 0
    assert (video.stream_url, video.player_url) == (export["stream_url"], export["player_url"])
    assert [v.id for v in conn.get_collection().get_videos()] == [video.id]


@pytest.mark.parametrize("emulator_config", [{"export_delay": 0.05}])
def test_a_session_exported_by_itself_has_its_video(emu, conn, emulator_config):
    cap, _ = _recorded_meeting(emu, conn, until="exported")
    video = conn.get_collection().get_video(cap.exported_video_id)
    assert video.id == cap.exported_video_id
    assert video.get_transcript_text() == " ".join(SAID)


def test_the_transcript_holds_every_recorded_word_at_seconds_from_the_videos_start(emu, conn):
    video, export, streams = _exported_video(emu, conn)

    # Live transcription ran on the mic only; the recording has the other side too.
    assert video.get_transcript_text() == " ".join(SAID)
    words = video.get_transcript()
    assert [w["text"] for w in words] == " ".join(SAID).split()
    assert all(0 <= w["start"] <= w["end"] <= export["duration"] for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)

    mic_said = streams["mic"].get_transcript()["segments"][0]  # epoch ms
    first = round((mic_said["start"] - _started_ms(emu, export["session_id"])) / 1000, 3)
    assert words[0] == {"start": first, "end": words[0]["end"], "text": "Let's"}

    sentences = video.get_transcript(segmenter="sentence")
    assert [s["text"] for s in sentences] == [
        SAID[0],
        SAID[1],
        "We decided to offer a discount.",
        "I will send the quote.",
        SAID[3],
    ]
    assert sentences[0]["start"] == first
    assert sentences[2]["end"] == sentences[3]["start"]  # one utterance, two sentences

    whole = video.get_transcript(segmenter="time", length=1000)
    assert whole == [{"start": 0.0, "end": export["duration"], "text": " ".join(SAID)}]


def test_transcript_start_and_end_keep_the_segments_that_overlap_them(emu, conn):
    video, _, _ = _exported_video(emu, conn)
    sentences = video.get_transcript(segmenter="sentence")
    objection = next(s for s in sentences if s["text"] == OBJECTION)

    window = video.get_transcript(
        segmenter="sentence", start=objection["start"], end=objection["end"]
    )
    assert OBJECTION in [s["text"] for s in window]
    assert SAID[0] not in [s["text"] for s in window]
    assert OBJECTION in video.get_transcript_text(start=objection["start"], end=objection["end"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("segmenter=paragraph", "'segmenter' must be one of word, sentence, time"),
        ("segmenter=time&length=0", "'length' must be > 0"),
        ("start=5&end=1", "'start' must be <= 'end'"),
        ("start=-1", "'start' must be >= 0"),
        ("force=maybe", "'force' must be 'true' or 'false'"),
    ],
)
def test_bad_transcript_parameters_are_400_naming_them(emu, conn, params, message):
    video, _, _ = _exported_video(emu, conn)
    with pytest.raises(InvalidRequestError, match=message) as info:
        conn.get(f"video/{video.id}/transcription?{params}")
    assert info.value.response.status_code == 400


def test_index_spoken_words_indexes_once_and_again_only_when_forced(emu, conn):
    video, _, _ = _exported_video(emu, conn)
    assert video.index_spoken_words() is None
    with pytest.raises(InvalidRequestError, match="already indexed") as info:
        video.index_spoken_words()
    assert info.value.response.status_code == 409
    video.index_spoken_words(force=True)
    with pytest.raises(InvalidRequestError, match="'segmentation_type' must be"):
        video.index_spoken_words(segmentation_type="paragraph", force=True)
    with pytest.raises(InvalidRequestError, match="'callback_url' is not supported"):
        video.index_spoken_words(callback_url="http://127.0.0.1:9/done", force=True)


def test_video_search_answers_spoken_words_and_scenes_as_search_v2_shots(emu, conn):
    video, _, _ = _exported_video(emu, conn, metadata={"title": "Pricing call"})
    video.index_spoken_words()

    response = video.search("enterprise tier costs")
    assert isinstance(response, SearchResponse)
    assert response.response_type == "shots"
    best = response.get_shots()[0]
    assert (best.video_id, best.text, best.video_title) == (video.id, OBJECTION, "Pricing call")
    sentence = next(s for s in video.get_transcript(segmenter="sentence") if s["text"] == OBJECTION)
    assert (best.start, best.end) == (sentence["start"], sentence["end"])

    scene = video.search("email draft quote").get_shots()[0]
    assert scene.text == "Email draft titled 'Quote for Dana' is open."
    assert scene.metadata["source"] == "visual_index"

    # Legacy options still route to legacy search, over the same records.
    legacy = video.search("quick answer", search_type="keyword", index_type="spoken_word")
    assert isinstance(legacy, SearchResult)
    assert [s.text for s in legacy] == [SAID[3]]

    # The collection's Search V2 covers every exported video.
    assert conn.get_collection().search("quick answer").get_shots()[0].video_id == video.id


def test_search_v2_clips_play_from_the_shots_start(emu, conn):
    video, _, _ = _exported_video(emu, conn)
    shot = video.search("enterprise tier", include_clip=True).get_shots()[0]
    assert shot.stream_url.endswith(f"/{shot.start:g}-{shot.end:g}/stream.m3u8")
    status, page = _get(shot.player_url)
    assert (status, f"starts at {shot.start:.1f} s" in page) == (200, True)


def test_generate_stream_of_a_timeline_and_of_a_shot(emu, conn):
    video, export, _ = _exported_video(emu, conn)
    assert video.generate_stream() == export["stream_url"]

    url = video.generate_stream([(0.1, 0.2)])
    assert url == f"{emu.base_url}/_media/video/{video.id}/0.1-0.2/stream.m3u8"
    assert video.player_url == f"{emu.base_url}/_media/player/video/{video.id}?t=0.1"
    assert _get(url)[0] == 200

    # An end past the video is cut to it; a start past it is refused.
    assert video.generate_stream([(0.1, 99)]).endswith(f"/0.1-{video.length:g}/stream.m3u8")
    with pytest.raises(InvalidRequestError, match="past the end of the"):
        video.generate_stream([(99, 100)])
    with pytest.raises(InvalidRequestError, match=r"timeline\[0\] must have 0 <= start < end"):
        video.generate_stream([(0.2, 0.1)])

    shot = video.search("quick answer", search_type="keyword").get_shots()[0]
    assert shot.generate_stream().endswith(f"/{shot.start:g}-{shot.end:g}/stream.m3u8")


def test_scene_indexes_of_the_video_list_the_screens_descriptions_in_seconds(emu, conn):
    video, export, streams = _exported_video(emu, conn)
    [listed] = video.list_scene_index()
    assert listed["scene_index_id"] == streams["screen"].list_scene_indexes()[0].rtstream_index_id
    records = video.get_scene_index(listed["scene_index_id"])
    assert records[0]["description"].startswith("Pricing page with three tiers")
    assert all(0 <= r["start"] <= r["end"] <= export["duration"] for r in records)
    with pytest.raises(InvalidRequestError, match="scene index 'nope' not found"):
        video.get_scene_index("nope")


def test_a_deleted_video_is_gone_from_get_list_search_and_player(emu, conn):
    video, export, _ = _exported_video(emu, conn)
    coll = conn.get_collection()
    video.update(name="Renamed")
    assert coll.get_video(video.id).name == "Renamed"

    video.delete()
    with pytest.raises(InvalidRequestError, match=f"video '{video.id}' not found") as info:
        coll.get_video(video.id)
    assert info.value.response.status_code == 404
    assert coll.get_videos() == []
    assert coll.legacy_search("discount").get_shots() == []
    assert _get(export["player_url"])[0] == 404
    with pytest.raises(InvalidRequestError, match="not found"):
        coll.delete_video(video.id)


def test_an_unknown_video_or_collection_is_404(emu, conn):
    coll = conn.get_collection()
    for call in (
        lambda: coll.get_video("m-nope"),
        lambda: Video(conn, id="m-nope", collection_id="default").get_transcript(),
        lambda: Video(conn, id="m-nope", collection_id="default").search("x"),
    ):
        with pytest.raises(InvalidRequestError, match="video 'm-nope' not found") as info:
            call()
        assert info.value.response.status_code == 404
    with pytest.raises(InvalidRequestError, match="collection 'other' not found"):
        conn.get("video", params={"collection_id": "other"})


def test_sdk_calls_the_emulator_leaves_out_say_so(emu, conn):
    video, _, streams = _exported_video(emu, conn)
    with pytest.raises(InvalidRequestError, match=r"video\.ask\(question\) .* is not served"):
        video.ask("what was decided?")
    with pytest.raises(InvalidRequestError, match="is not served by the VideoDB emulator"):
        streams["mic"].understand(analyzers=[{"type": "vlm"}])
    with pytest.raises(InvalidRequestError, match=r"connect_rtstream.*is not served") as info:
        conn.get_collection().connect_rtstream("rtsp://camera", name="cam")
    assert info.value.response.status_code == 404
    assert "README" in json.loads(info.value.response.text)["message"]
