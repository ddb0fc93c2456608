"""Content for any desktop client: a session some client starts with its token plays a
meeting (the configured default script, or one attached through `simulate`), and what a
backend sees of it is what the built-in Play shows."""

from __future__ import annotations

import subprocess
import sys

import pytest
import videodb

from videodb_emulator.control_client import ControlError
from videodb_emulator.testing import running_emulator

from .helpers import TINY_SCRIPT, collect, streams_by_category

# What a desktop app sends: one channel per source it captures, all stored.
DESKTOP_CHANNELS = [
    {"channel_id": "mic:default", "name": "Mic", "type": "audio", "store": True},
    {"channel_id": "system_audio:default", "name": "System", "type": "audio", "store": True},
    {"channel_id": "display:1", "name": "Display", "type": "video", "store": True},
]
DEFAULT_TINY = {"default_script": "tiny_meeting", "scripts_dirs": [str(TINY_SCRIPT.parent)]}


class DesktopClient:
    """Plays the desktop client as a real one does: plain HTTP with its client token."""

    def __init__(self, emu, conn) -> None:
        token = conn.generate_client_token()
        self.http = videodb.connect(session_token=token, base_url=emu.base_url)

    def start(self, session_id: str, channels: list[dict] = DESKTOP_CHANNELS) -> dict:
        return self.http.post(
            "capture/session/start", data={"session_id": session_id, "channels": channels}
        )

    def stop(self, session_id: str) -> dict:
        return self.http.post(f"capture/session/{session_id}/stop")


def _finals(events: list[dict]) -> list[tuple[str, str]]:
    return [
        (e["rtstream_name"], e["data"]["text"])
        for e in events
        if e.get("channel") == "transcript" and e["data"]["is_final"]
    ]


async def _heard(emu, conn, cap_id: str, ws) -> list[tuple[str, str]]:
    """What a backend hears of an active session: transcripts on both audio streams, from
    the first word (the tiny meeting is silent for its first second), until all 4 finals."""
    emu.control.wait_for_status(cap_id, "active")
    streams = streams_by_category(conn, cap_id)
    for category in ("mic", "system_audio"):
        streams[category].start_transcript(ws_connection_id=ws.connection_id)
    emu.control.set_speed(cap_id, 8)
    return _finals(await collect(ws, lambda ev: len(_finals(ev)) == 4))


@pytest.mark.parametrize("emulator_config", [DEFAULT_TINY])
async def test_a_session_any_client_starts_hears_what_the_built_in_play_does(
    emu, conn, emulator_config
):
    ws = await conn.connect_websocket().connect()
    played = conn.create_capture_session(end_user_id="u")
    emu.control.simulate(played.id, "tiny_meeting", speed=1)
    by_play = await _heard(emu, conn, played.id, ws)

    client_started = conn.create_capture_session(end_user_id="u")
    desktop = DesktopClient(emu, conn)
    assert desktop.start(client_started.id)["status"] == "starting"
    by_client = await _heard(emu, conn, client_started.id, ws)
    await ws.close()

    assert by_client == by_play
    assert by_client[0] == ("mic:default", "Let's review the pricing page today.")
    meeting = emu.control.meeting(client_started.id)
    assert (meeting["script"], meeting["mode"], meeting["origin"]) == (
        "tiny_meeting",
        "attached",
        "default_script",
    )
    # Stored as the real service stores them: the transcript reads back through the SDK.
    mic = streams_by_category(conn, client_started.id)["mic"]
    assert [s["text"] for s in mic.get_transcript()["segments"]] == [
        text for name, text in by_client if name == "mic:default"
    ]
    # The client, not the script, ends the capture.
    assert emu.control.wait_for_meeting(client_started.id)["state"] == "finished"
    assert conn.get_capture_session(client_started.id).status == "active"
    desktop.stop(client_started.id)
    emu.control.wait_for_status(client_started.id, "stopped")


async def test_simulate_attaches_a_script_to_a_session_a_client_already_started(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    desktop = DesktopClient(emu, conn)
    desktop.start(cap.id)
    emu.control.wait_for_status(cap.id, "active")
    assert emu.control.meeting(cap.id) is None  # the test suite's emulators play nothing

    meeting = emu.control.simulate(cap.id, TINY_SCRIPT, speed=1)
    assert (meeting["mode"], meeting["origin"]) == ("attached", "simulate")
    with pytest.raises(ControlError, match="already running") as info:
        emu.control.simulate(cap.id, TINY_SCRIPT, speed=1)
    assert info.value.status == 409

    ws = await conn.connect_websocket().connect()
    heard = await _heard(emu, conn, cap.id, ws)
    await ws.close()
    assert heard == [
        ("mic:default", "Let's review the pricing page today."),
        ("system_audio:default", "The enterprise tier costs too much for us."),
        ("mic:default", "We decided to offer a discount. I will send the quote."),
        ("system_audio:default", "Great, thanks for the quick answer."),
    ]
    desktop.stop(cap.id)
    emu.control.wait_for_status(cap.id, "stopped")
    with pytest.raises(ControlError, match="'stopped'") as info:
        emu.control.simulate(cap.id, TINY_SCRIPT)
    assert info.value.status == 409


async def test_an_attached_meeting_plays_only_on_the_channels_the_client_captures(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    DesktopClient(emu, conn).start(cap.id, [DESKTOP_CHANNELS[0]])
    emu.control.wait_for_status(cap.id, "active")
    emu.control.simulate(cap.id, TINY_SCRIPT, speed=1)
    ws = await conn.connect_websocket().connect()
    streams = streams_by_category(conn, cap.id)
    assert set(streams) == {"mic"}
    streams["mic"].start_transcript(ws_connection_id=ws.connection_id)
    emu.control.set_speed(cap.id, 8)
    heard = _finals(await collect(ws, lambda ev: len(_finals(ev)) == 2))
    await ws.close()
    assert heard == [
        ("mic:default", "Let's review the pricing page today."),
        ("mic:default", "We decided to offer a discount. I will send the quote."),
    ]
    assert emu.control.wait_for_meeting(cap.id)["state"] == "finished"


@pytest.mark.parametrize("emulator_config", [{**DEFAULT_TINY, "default_script_speed": 0.01}])
def test_a_meeting_asked_for_replaces_the_default_one(emu, conn, emulator_config):
    cap = conn.create_capture_session(end_user_id="u")
    DesktopClient(emu, conn).start(cap.id)
    emu.control.wait_for(lambda: (m := emu.control.meeting(cap.id)) and m["state"] == "playing")
    meeting = emu.control.simulate(cap.id, "sales_call", speed=1)
    assert (meeting["script"], meeting["origin"]) == ("sales_call", "simulate")
    assert [m["origin"] for m in emu.control.state()["meetings"]] == ["simulate"]


def test_an_unknown_default_script_stops_the_emulator_from_starting():
    with (
        pytest.raises(ValueError, match="unknown script 'no_such_meeting'"),
        running_emulator(default_script="no_such_meeting"),
    ):
        pass


def test_the_cli_refuses_an_unknown_default_script_before_serving():
    result = subprocess.run(
        [sys.executable, "-m", "videodb_emulator", "--port", "0", "--default-script", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown script 'nope'" in result.stderr and "product_planning" in result.stderr


def test_a_served_emulator_plays_product_planning_unless_told_none():
    from videodb_emulator.config import EmulatorConfig

    assert EmulatorConfig().default_script == "product_planning"
    assert EmulatorConfig(default_script="none").default_script is None
