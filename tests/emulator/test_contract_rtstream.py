"""The real SDK against the emulator: transcripts, scene indexes, alerts, search, streams."""

from __future__ import annotations

import urllib.request

import pytest
from videodb.exceptions import InvalidRequestError

from .helpers import start_active_meeting, streams_by_category


def _finish(emu, cap_id, speed=40.0):
    """Play the rest of the meeting fast, and wait until the capture has stopped (a moment
    after the meeting's last moment): what its streams report is then final."""
    emu.control.set_speed(cap_id, speed)
    emu.control.wait_for_meeting(cap_id)
    ended = {"stopped", "exported", "failed"}
    emu.control.wait_for(lambda: emu.control.session(cap_id)["status"] in ended, 10.0)


def test_transcript_start_stop_and_paged_get_transcript(emu, conn):
    cap = start_active_meeting(emu, conn)
    streams = streams_by_category(conn, cap.id)
    mic, system = streams["mic"], streams["system_audio"]
    status = mic.start_transcript()
    assert status["status"] == "running"
    system.start_transcript(engine="assemblyai")
    _finish(emu, cap.id)

    full = mic.get_transcript()
    assert [s["text"] for s in full["segments"]] == [
        "Let's review the pricing page today.",
        "We decided to offer a discount. I will send the quote.",
    ]
    assert all(s["is_final"] and s["end"] > s["start"] > 1.7e12 for s in full["segments"])
    assert (full["total"], full["next_page"], full["status"]) == (2, False, "stopped")

    first = mic.get_transcript(page=1, page_size=1)
    second = mic.get_transcript(page=2, page_size=1)
    assert first["next_page"] is True and second["next_page"] is False
    assert first["segments"] + second["segments"] == full["segments"]

    cutoff = full["segments"][0]["end"]
    assert mic.get_transcript(since=cutoff)["segments"] == full["segments"][1:]
    # `since` is also accepted in epoch seconds.
    assert mic.get_transcript(since=cutoff / 1000)["segments"] == full["segments"][1:]
    window = mic.get_transcript(start=cutoff + 1, end=full["segments"][1]["end"])
    assert window["segments"] == full["segments"][1:]

    stopped = system.stop_transcript()
    assert stopped["status"] == "stopped"
    assert len(system.get_transcript()["segments"]) == 2


def test_no_transcript_is_stored_for_a_stream_whose_transcription_never_started(emu, conn):
    cap = start_active_meeting(emu, conn)
    streams = streams_by_category(conn, cap.id)
    _finish(emu, cap.id)
    result = streams["mic"].get_transcript()
    assert (result["segments"], result["status"]) == ([], "not_started")


def test_scene_indexes_create_list_get_records_with_paging_and_start_stop(emu, conn):
    cap = start_active_meeting(emu, conn)
    streams = streams_by_category(conn, cap.id)
    audio = streams["mic"].index_audio(
        prompt="Extract decisions", batch_config={"type": "time", "value": 2}, name="decisions"
    )
    visual = streams["screen"].index_visuals(
        prompt="Describe the screen", batch_config={"type": "time", "value": 2, "frame_count": 2}
    )
    assert audio.extraction_type == "transcript"
    assert audio.extraction_config == {"segmenter": "time", "segmentation_value": 2}
    assert visual.extraction_type == "time"
    assert visual.extraction_config == {"time": 2, "frame_count": 2}
    assert audio.status == "connected"
    assert [i.rtstream_index_id for i in streams["mic"].list_scene_indexes()] == [
        audio.rtstream_index_id
    ]
    assert streams["mic"].get_scene_index(audio.rtstream_index_id).name == "decisions"
    _finish(emu, cap.id)

    scenes = visual.get_scenes()
    texts = [s["text"] for s in scenes["scenes"]]
    assert texts[0] == "Pricing page with three tiers: Starter, Team, Enterprise."
    assert texts[-1] == "Email draft titled 'Quote for Dana' is open."
    assert scenes["next_page"] is False
    page1 = visual.get_scenes(page=1, page_size=2)
    assert page1["next_page"] is True and len(page1["scenes"]) == 2

    audio_texts = [s["text"] for s in audio.get_scenes()["scenes"]]
    assert "Customer finds the enterprise tier too expensive." in audio_texts
    assert "Decision: offer a discount; action item: send the quote." in audio_texts

    audio.stop()
    assert streams["mic"].list_scene_indexes()[0].status == "stopped"
    with pytest.raises(InvalidRequestError, match="stopped"):
        audio.start()  # the stream itself has ended with the session


def test_audio_index_word_batching_emits_one_insight_per_n_words(emu, conn):
    cap = start_active_meeting(emu, conn)
    streams = streams_by_category(conn, cap.id)
    index = streams["mic"].index_audio(prompt="p", batch_config={"type": "word", "value": 6})
    sentences = streams["mic"].index_audio(
        prompt="p", batch_config={"type": "sentence", "value": 3}
    )
    _finish(emu, cap.id)
    # Mic says 6 words, then 11 words: one batch closes after each utterance.
    assert len(index.get_scenes()["scenes"]) == 2
    # Three sentences in total close exactly one sentence batch.
    assert len(sentences.get_scenes()["scenes"]) == 1


def test_events_and_alerts_create_list_enable_disable(emu, conn, receiver):
    cap = start_active_meeting(emu, conn)
    streams = streams_by_category(conn, cap.id)
    event_id = conn.create_event(event_prompt="Detect a pricing objection", label="pricing")
    assert [e["event_id"] for e in conn.list_events()] == [event_id]
    index = streams["system_audio"].index_audio(prompt="p")
    alert_id = index.create_alert(event_id, callback_url=f"{receiver.url}/alert")
    assert alert_id.startswith("alrt-")
    alerts = index.list_alerts()
    assert [(a["alert_id"], a["status"], a["event_id"]) for a in alerts] == [
        (alert_id, "enabled", event_id)
    ]
    index.disable_alert(alert_id)
    assert index.list_alerts()[0]["status"] == "disabled"
    index.enable_alert(alert_id)
    assert index.list_alerts()[0]["status"] == "enabled"
    # The OpenAPI spec's body shape is accepted too.
    path = f"rtstream/{index.rtstream_id}/index/{index.rtstream_index_id}/alert/{alert_id}/status"
    conn.patch(path, data={"status": "disabled"})
    assert index.list_alerts()[0]["status"] == "disabled"
    with pytest.raises(InvalidRequestError, match="action"):
        conn.patch(path, data={"action": "toggle"})
    with pytest.raises(InvalidRequestError, match="not found"):
        index.create_alert("evt-unknown", callback_url=f"{receiver.url}/alert")


def test_search_scores_transcript_and_index_records_by_keywords(emu, conn):
    cap = start_active_meeting(emu, conn)
    streams = streams_by_category(conn, cap.id)
    system = streams["system_audio"]
    system.start_transcript()
    index = system.index_audio(prompt="p", batch_config={"type": "time", "value": 2})
    _finish(emu, cap.id)

    shots = system.search("enterprise tier expensive").get_shots()
    assert shots, "expected matches"
    assert shots[0].search_score == 1.0
    assert shots[0].text == "Customer finds the enterprise tier too expensive."
    assert all(s.search_score >= 0.2 for s in shots)
    assert shots[0].rtstream_name == "system_audio:default"

    only_index = system.search("enterprise", index_id=index.rtstream_index_id).get_shots()
    assert {s.scene_index_id for s in only_index} == {index.rtstream_index_id}
    assert len(system.search("enterprise", result_threshold=1).get_shots()) == 1
    assert system.search("kubernetes").get_shots() == []


def test_generate_stream_returns_urls_served_by_the_emulator(emu, conn):
    cap = start_active_meeting(emu, conn)
    mic = streams_by_category(conn, cap.id)["mic"]
    player_url = mic.generate_stream(start=1_795_000_000, end=1_795_000_060)
    assert player_url == mic.player_url
    for url in (mic.stream_url, mic.player_url):
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local emulator
            assert resp.status == 200
    with pytest.raises(InvalidRequestError, match="after"):
        mic.generate_stream(start=10, end=5)
