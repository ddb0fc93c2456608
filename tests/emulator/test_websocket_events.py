"""WebSocket events through the SDK's own connect_websocket()/connect()/receive()."""

from __future__ import annotations

import asyncio

import pytest
import videodb

from .helpers import Listener, collect, start_active_meeting, streams_by_category

AI_CHANNELS = {"transcript", "audio_index", "visual_index", "scene_index", "alert"}


def _stopped(events):
    return any(e.get("event") == "capture_session.stopped" for e in events)


async def _meeting_with_everything(emu, conn, ws, speed_after_setup=8.0):
    cap = start_active_meeting(emu, conn, ws_connection_id=ws.connection_id)
    streams = streams_by_category(conn, cap.id)
    event_id = conn.create_event("Watch for objections about price", "pricing_objection")
    for category in ("mic", "system_audio"):
        streams[category].start_transcript(ws_connection_id=ws.connection_id)
        index = streams[category].index_audio(
            prompt="key points",
            batch_config={"type": "time", "value": 2},
            ws_connection_id=ws.connection_id,
        )
        index.create_alert(event_id, "http://127.0.0.1:9/alerts", ws_connection_id=ws.connection_id)
    streams["screen"].index_visuals(
        prompt="describe",
        batch_config={"type": "time", "value": 2, "frame_count": 1},
        ws_connection_id=ws.connection_id,
    )
    emu.control.set_speed(cap.id, speed_after_setup)
    return cap, streams


async def test_first_message_carries_a_distinct_connection_id_per_connection(conn):
    first = await conn.connect_websocket().connect()
    second = await conn.connect_websocket().connect()
    try:
        assert first.connection_id.startswith("ws-")
        assert second.connection_id.startswith("ws-")
        assert first.connection_id != second.connection_id
    finally:
        await first.close()
        await second.close()


async def test_ai_events_have_the_documented_shapes(emu, conn):
    ws = await conn.connect_websocket().connect()
    _, streams = await _meeting_with_everything(emu, conn, ws)
    events = await collect(ws, _stopped)
    await ws.close()

    ai = [e for e in events if e["channel"] in AI_CHANNELS]
    assert {e["channel"] for e in ai} == {"transcript", "audio_index", "visual_index", "alert"}
    names = {s.id: s.name for s in streams.values()}
    for event in ai:
        assert names[event["rtstream_id"]] == event["rtstream_name"]
        assert isinstance(event["data"]["start"], int) and event["data"]["start"] > 1.7e12
        assert event["data"]["end"] >= event["data"]["start"]

    transcripts = [e for e in ai if e["channel"] == "transcript"]
    finals = [e for e in transcripts if e["data"]["is_final"]]
    assert [e["data"]["text"] for e in finals] == [
        "Let's review the pricing page today.",
        "The enterprise tier costs too much for us.",
        "We decided to offer a discount. I will send the quote.",
        "Great, thanks for the quick answer.",
    ]
    for final in finals:
        interims = [
            e["data"]
            for e in transcripts
            if not e["data"]["is_final"]
            and e["rtstream_id"] == final["rtstream_id"]
            and e["data"]["start"] == final["data"]["start"]
        ]
        # Interims grow word by word and share the final's start.
        words = final["data"]["text"].split()
        assert [i["text"] for i in interims] == [" ".join(words[:n]) for n in range(1, len(words))]
        assert set(final["data"]) == {"text", "is_final", "start", "end"}

    visual = [e for e in ai if e["channel"] == "visual_index"]
    assert visual[0]["rtstream_name"] == "display:1"
    assert set(visual[0]["data"]) == {"text", "start", "end"}
    audio = [e for e in ai if e["channel"] == "audio_index"]
    assert {e["rtstream_name"] for e in audio} == {"mic:default", "system_audio:default"}

    (alert,) = [e for e in ai if e["channel"] == "alert"]
    assert alert["rtstream_name"] == "system_audio:default"
    assert alert["data"]["label"] == alert["data"]["event_label"] == "pricing_objection"
    assert alert["data"]["triggered"] is True
    assert alert["data"]["confidence"] == 0.87
    assert alert["data"]["text"] == "Customer objects to enterprise pricing."
    assert {"start", "end", "timestamp"} <= set(alert["data"])


async def test_lifecycle_changes_go_to_the_sessions_ws_connection(emu, conn):
    ws = await conn.connect_websocket().connect()
    cap = start_active_meeting(emu, conn, speed=40, ws_connection_id=ws.connection_id)
    events = await collect(ws, _stopped)
    await ws.close()
    lifecycle = [e for e in events if e["channel"] == "capture_session"]
    assert [e["event"] for e in lifecycle] == [
        "capture_session.created",
        "capture_session.starting",
        "capture_session.active",
        "capture_session.stopping",
        "capture_session.stopped",
    ]
    active = lifecycle[2]
    assert active["capture_session_id"] == cap.id
    assert active["status"] == "active"
    assert {r["name"] for r in active["data"]["rtstreams"]} == {
        "mic:default",
        "system_audio:default",
        "display:1",
    }


async def test_lifecycle_events_after_a_reconnect_reach_the_owners_new_connection(emu, conn):
    old = await conn.connect_websocket().connect()
    cap = start_active_meeting(emu, conn, speed=1, ws_connection_id=old.connection_id)
    before = await collect(old, lambda ev: any(e.get("status") == "active" for e in ev))
    emu.control.drop_connection(old.connection_id)  # the network blips
    async for _ in old.receive():  # ends when the emulator closes the socket
        pass
    new = await conn.connect_websocket().connect()
    # Someone else's socket, opened later: a desktop client's, with its own token.
    desktop = videodb.connect(session_token=conn.generate_client_token(), base_url=emu.base_url)
    stranger = Listener(await desktop.connect_websocket().connect())

    emu.control.stop_session(cap.id)
    after = await collect(new, lambda ev: any(e.get("status") == "stopped" for e in ev))
    await new.close()
    await asyncio.sleep(0.1)
    theirs = await stranger.stop()
    assert [e["status"] for e in before] == ["created", "starting", "active"]
    assert [e["status"] for e in after] == ["stopping", "stopped"]
    assert {e["capture_session_id"] for e in after} == {cap.id}
    assert theirs == []


async def test_lifecycle_events_for_a_connection_never_opened_are_lost(emu, conn):
    ws = Listener(await conn.connect_websocket().connect())
    cap = start_active_meeting(emu, conn, speed=40, ws_connection_id="ws-never-opened")
    emu.control.wait_for_status(cap.id, "stopped")
    assert await ws.stop() == []
    assert emu.control.state()["websocket"]["events_lost"] >= 5


async def test_events_are_routed_only_to_the_connection_the_operation_started_with(emu, conn):
    ws_a = await conn.connect_websocket().connect()
    ws_b = await conn.connect_websocket().connect()
    cap = start_active_meeting(emu, conn, ws_connection_id=ws_b.connection_id)
    streams = streams_by_category(conn, cap.id)
    streams["mic"].start_transcript(ws_connection_id=ws_a.connection_id)
    emu.control.set_speed(cap.id, 8)
    a = await collect(ws_a, lambda ev: sum(e["data"]["is_final"] for e in ev) == 2)
    b = await collect(ws_b, _stopped)
    await ws_a.close()
    await ws_b.close()
    assert {e["channel"] for e in a} == {"transcript"}
    assert {e["channel"] for e in b} == {"capture_session"}


async def test_restarting_transcription_with_a_new_connection_reroutes_future_events(emu, conn):
    ws_old = await conn.connect_websocket().connect()
    cap = start_active_meeting(emu, conn)
    mic = streams_by_category(conn, cap.id)["mic"]
    mic.start_transcript(ws_connection_id=ws_old.connection_id)
    emu.control.set_speed(cap.id, 4)
    first = await collect(ws_old, lambda ev: any(e["data"]["is_final"] for e in ev))
    ws_new = await conn.connect_websocket().connect()
    mic.start_transcript(ws_connection_id=ws_new.connection_id)
    later = await collect(ws_new, lambda ev: any(e["data"]["is_final"] for e in ev))
    await ws_old.close()
    await ws_new.close()
    assert first[-1]["data"]["text"] == "Let's review the pricing page today."
    assert later[-1]["data"]["text"] == "We decided to offer a discount. I will send the quote."


async def test_dropped_socket_loses_events_but_backfill_fills_the_gap(emu, conn):
    ws = await conn.connect_websocket().connect()
    cap = start_active_meeting(emu, conn)
    streams = streams_by_category(conn, cap.id)
    for category in ("mic", "system_audio"):
        streams[category].start_transcript(ws_connection_id=ws.connection_id)
    emu.control.set_speed(cap.id, 3)
    seen = await collect(ws, lambda ev: any(e["data"]["is_final"] for e in ev))
    emu.control.drop_connection(ws.connection_id)
    async for event in ws.receive():  # ends when the emulator closes the socket
        seen.append(event)
    last_seen = max(e["data"]["end"] for e in seen if e["data"]["is_final"])

    # The meeting goes on while we are away: wait until a final is lost from the socket.
    finals_seen = sum(1 for e in seen if e["data"]["is_final"])

    def stored_finals() -> int:
        return sum(len(streams[c].get_transcript()["segments"]) for c in ("mic", "system_audio"))

    emu.control.wait_for(lambda: stored_finals() > finals_seen)
    assert emu.control.state()["websocket"]["events_lost"] > 0
    ws2 = await conn.connect_websocket().connect()
    listener = Listener(ws2)
    for category in ("mic", "system_audio"):
        streams[category].start_transcript(ws_connection_id=ws2.connection_id)
    emu.control.set_speed(cap.id, 20)
    emu.control.wait_for_meeting(cap.id)
    await asyncio.sleep(0.2)
    seen.extend(await listener.stop())

    socket_finals = {
        e["data"]["text"] for e in seen if e["channel"] == "transcript" and e["data"]["is_final"]
    }
    backfill = {
        seg["text"]
        for category in ("mic", "system_audio")
        for seg in streams[category].get_transcript(since=last_seen)["segments"]
    }
    everything = {
        seg["text"]
        for category in ("mic", "system_audio")
        for seg in streams[category].get_transcript()["segments"]
    }
    assert len(everything) == 4
    assert everything - socket_finals, "the drop should have lost at least one final"
    assert socket_finals | backfill == everything


@pytest.mark.parametrize("emulator_config", [{"send_scene_index": True}])
async def test_scene_index_channel_is_sent_only_when_configured(emu, conn, emulator_config):
    ws = await conn.connect_websocket().connect()
    cap = start_active_meeting(emu, conn, ws_connection_id=ws.connection_id)
    streams_by_category(conn, cap.id)["screen"].index_visuals(
        prompt="d", batch_config={"type": "time", "value": 2}, ws_connection_id=ws.connection_id
    )
    emu.control.set_speed(cap.id, 20)
    events = await collect(ws, _stopped)
    await ws.close()
    visual = [e["data"] for e in events if e["channel"] == "visual_index"]
    scene = [e["data"] for e in events if e["channel"] == "scene_index"]
    assert visual and visual == scene


async def test_transcription_started_late_only_misses_earlier_utterances(emu, conn):
    ws = await conn.connect_websocket().connect()
    cap = start_active_meeting(emu, conn, speed=4)
    mic = streams_by_category(conn, cap.id)["mic"]
    emu.control.wait_for(lambda: (m := emu.control.meeting(cap.id)) and m["script_time"] > 2.5)
    mic.start_transcript(ws_connection_id=ws.connection_id)
    events = await collect(ws, lambda ev: any(e["data"]["is_final"] for e in ev))
    await ws.close()
    assert [e["data"]["text"] for e in events if e["data"]["is_final"]] == [
        "We decided to offer a discount. I will send the quote."
    ]
    assert [s["text"] for s in mic.get_transcript()["segments"]] == [
        "We decided to offer a discount. I will send the quote."
    ]
