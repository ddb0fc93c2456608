"""The real SDK against the emulator: the RTStream and collection calls beyond the capture
loop (`rts.start()`, `rts.stop()`, `rts.export()`, `coll.list_rtstreams()`, the
collection-wide stream search)."""

from __future__ import annotations

import pytest
import videodb
from videodb.exceptions import InvalidRequestError
from videodb.rtstream import RTStream, RTStreamExportResult, RTStreamSearchResult

from .helpers import start_active_meeting, streams_by_category

MIC_SAID = [
    "Let's review the pricing page today.",
    "We decided to offer a discount. I will send the quote.",
]


def _finish(emu, cap_id: str) -> None:
    emu.control.set_speed(cap_id, 20.0)
    emu.control.wait_for_meeting(cap_id)
    emu.control.wait_for_status(cap_id, "stopped")


def _status(conn, rts_id: str) -> str:
    return conn.get_collection().get_rtstream(rts_id).status


def test_rts_stop_ends_the_stream_and_what_runs_on_it(emu, conn):
    # A quarter speed: the tiny meeting is silent for its first 4 s of wall time.
    cap = start_active_meeting(emu, conn, speed=0.25)
    streams = streams_by_category(conn, cap.id)
    mic, system = streams["mic"], streams["system_audio"]
    mic.start_transcript()
    system.start_transcript()

    mic.stop()
    assert mic.status == _status(conn, mic.id) == "stopped"
    assert mic.get_transcript()["status"] == "stopped"
    with pytest.raises(InvalidRequestError, match="has stopped") as info:
        mic.start_transcript()
    assert info.value.response.status_code == 409
    mic.stop()  # stopping again changes nothing

    _finish(emu, cap.id)
    assert mic.get_transcript()["segments"] == []
    assert len(system.get_transcript()["segments"]) == 2


def test_rts_start_records_again_until_the_session_ends(emu, conn):
    cap = start_active_meeting(emu, conn, speed=0.25)
    mic = streams_by_category(conn, cap.id)["mic"]
    mic.stop()
    mic.start()
    assert mic.status == _status(conn, mic.id) == "connected"
    # AI operations do not come back by themselves after a stop; started again, they run.
    mic.start_transcript()
    _finish(emu, cap.id)
    assert [s["text"] for s in mic.get_transcript()["segments"]] == MIC_SAID

    with pytest.raises(InvalidRequestError, match=r"is 'stopped'.* cannot start again") as info:
        mic.start()
    assert info.value.response.status_code == 409
    with pytest.raises(InvalidRequestError, match="'action' must be one of start, stop"):
        conn.patch(f"rtstream/{mic.id}/status", data={"action": "pause"})


def test_rts_export_makes_a_video_of_a_screen_and_an_audio_asset_of_a_microphone(emu, conn):
    cap = start_active_meeting(emu, conn, speed=0.25)
    streams = streams_by_category(conn, cap.id)
    streams["screen"].index_visuals(
        prompt="Describe the screen", batch_config={"type": "time", "value": 2, "frame_count": 1}
    )
    with pytest.raises(InvalidRequestError, match="is still recording") as info:
        streams["mic"].export()
    assert info.value.response.status_code == 409
    _finish(emu, cap.id)
    coll = conn.get_collection()

    screen = streams["screen"].export()
    assert isinstance(screen, RTStreamExportResult)
    assert screen.video_id.startswith("m-")
    assert screen.name == "display:1 - Recording"  # the SDK's documented default
    assert screen.duration > 0
    assert streams["screen"].export().video_id == screen.video_id  # idempotent
    video = coll.get_video(screen.video_id)
    assert (video.name, video.length, video.player_url) == (
        screen.name,
        screen.duration,
        screen.player_url,
    )
    assert video.get_transcript_text() == ""  # a screen has nothing to say
    assert [i["scene_index_id"] for i in video.list_scene_index()] == [
        streams["screen"].list_scene_indexes()[0].rtstream_index_id
    ]

    mic = streams["mic"].export(name="Mic")
    assert mic.video_id.startswith("a-")
    assert (mic.name, mic.stream_url, mic.player_url) == ("Mic", None, None)
    audio = coll.get_audio(mic.video_id)
    assert (audio.name, audio.length) == ("Mic", mic.duration)
    # The recording, whether or not anything transcribed it live.
    assert audio.get_transcript_text() == " ".join(MIC_SAID)
    assert [a.id for a in coll.get_audios()] == [mic.video_id]
    assert mic.video_id not in [v.id for v in coll.get_videos()]

    # The session's own export is a separate video of everything.
    session_video = coll.get_video(conn.get_capture_session(cap.id).export()["video_id"])
    assert session_video.id != screen.video_id
    assert "The enterprise tier costs too much for us." in session_video.get_transcript_text()

    audio.delete()
    with pytest.raises(InvalidRequestError, match=f"audio '{mic.video_id}' not found"):
        coll.get_audio(mic.video_id)


def test_a_stream_whose_channel_was_not_stored_has_nothing_to_export(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    client = videodb.connect(session_token=conn.generate_client_token(), base_url=emu.base_url)
    client.post(
        "capture/session/start",
        data={
            "session_id": cap.id,
            "channels": [{"channel_id": "mic:default", "type": "audio", "store": False}],
        },
    )
    emu.control.wait_for_status(cap.id, "active")
    client.post(f"capture/session/{cap.id}/stop")
    emu.control.wait_for_status(cap.id, "stopped")
    [mic] = conn.get_capture_session(cap.id).rtstreams
    with pytest.raises(InvalidRequestError, match="was not stored") as info:
        mic.export()
    assert info.value.response.status_code == 409


def test_list_rtstreams_filters_orders_and_pages(emu, conn):
    done = start_active_meeting(emu, conn, speed=50.0)
    emu.control.wait_for_status(done.id, "stopped", timeout=15)
    live = start_active_meeting(emu, conn, speed=0.01)
    coll = conn.get_collection()

    every = coll.list_rtstreams()
    assert len(every) == 6
    assert all(isinstance(r, RTStream) for r in every)
    assert {r.channel_id for r in every} == {"mic", "system_audio", "screen"}
    live_ids = {r.id for r in conn.get_capture_session(live.id).rtstreams}
    assert {r.id for r in coll.list_rtstreams(status="connected")} == live_ids
    assert len(coll.list_rtstreams(name="mic:default")) == 2
    names = [r.name for r in coll.list_rtstreams(ordering="-name")]
    assert names == sorted(names, reverse=True)
    assert [r.id for r in coll.list_rtstreams(limit=2, offset=1)] == [r.id for r in every[1:3]]
    with pytest.raises(InvalidRequestError, match="'ordering' must be one of") as info:
        coll.list_rtstreams(ordering="colour")
    assert info.value.response.status_code == 400


def test_collection_stream_search_covers_every_stream_and_names_each(emu, conn):
    cap = start_active_meeting(emu, conn, speed=0.25)
    mic = streams_by_category(conn, cap.id)["mic"]
    mic.start_transcript()
    _finish(emu, cap.id)

    result = conn.get_collection().legacy_search("discount", namespace="rtstream")
    assert isinstance(result, RTStreamSearchResult)
    [shot] = result.get_shots()
    assert (shot.rtstream_id, shot.rtstream_name, shot.text) == (mic.id, "mic:default", MIC_SAID[1])
    said = mic.get_transcript()["segments"][1]
    assert (shot.start, shot.end) == (said["start"], said["end"])  # epoch ms, as rts.search
