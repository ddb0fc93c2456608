"""Export by itself, as VideoDB does: a stopped session with a stored channel becomes
`exported` without anyone calling export(); an explicit export() still works, once."""

from __future__ import annotations

import time

import pytest
import videodb
from videodb.exceptions import InvalidRequestError

from .helpers import TINY_SCRIPT, collect

EXPORTED_DATA = {"exported_video_id", "stream_url", "player_url", "duration"}


def _played_and_stopped(emu, conn, receiver, **session_kwargs):
    cap = conn.create_capture_session(end_user_id="u", callback_url=receiver.url, **session_kwargs)
    emu.control.simulate(cap.id, TINY_SCRIPT, speed=40)
    emu.control.wait_for_status(cap.id, "stopped")
    return cap


def _exported_webhooks(emu, cap_id):
    return [
        d
        for d in emu.control.deliveries(cap_id, kind="webhook")
        if d["body"]["event"] == "capture_session.exported"
    ]


@pytest.mark.parametrize("emulator_config", [{"export_delay": 1.0}])
async def test_a_stopped_session_with_a_stored_channel_is_exported_without_being_asked(
    emu, conn, receiver, emulator_config
):
    ws = await conn.connect_websocket().connect()
    cap = _played_and_stopped(emu, conn, receiver, ws_connection_id=ws.connection_id)
    stopped = conn.get_capture_session(cap.id)
    assert (stopped.status, stopped.export_status, stopped.exported_video_id) == (
        "stopped",
        "exporting",
        None,
    )

    hook = receiver.wait_for(
        lambda: [b for b in receiver.bodies() if b["event"] == "capture_session.exported"]
    )[0]
    exported = conn.get_capture_session(cap.id)
    assert (exported.status, exported.export_status) == ("exported", "exported")
    assert set(hook["data"]) == EXPORTED_DATA
    assert hook["data"]["exported_video_id"] == exported.exported_video_id
    assert hook["data"]["duration"] > 0
    assert hook["data"]["player_url"].endswith(f"/video/{exported.exported_video_id}")

    # The same event on the session's socket, with the same data.
    events = await collect(
        ws, lambda ev: any(e.get("event") == "capture_session.exported" for e in ev)
    )
    await ws.close()
    (on_socket,) = [e for e in events if e.get("event") == "capture_session.exported"]
    assert on_socket["data"] == hook["data"]
    assert on_socket["event_id"] == hook["event_id"]
    assert [b["event"] for b in receiver.bodies()][-2:] == [
        "capture_session.stopped",
        "capture_session.exported",
    ]


@pytest.mark.parametrize("emulator_config", [{"export_delay": 0.1}])
def test_an_explicit_export_after_the_automatic_one_gives_the_same_video_and_no_second_webhook(
    emu, conn, receiver, emulator_config
):
    cap = _played_and_stopped(emu, conn, receiver)
    emu.control.wait_for_status(cap.id, "exported")
    video_id = conn.get_capture_session(cap.id).exported_video_id

    result = conn.get_capture_session(cap.id).export()
    assert (result["export_status"], result["video_id"]) == ("exported", video_id)
    time.sleep(0.3)  # what a second webhook would need to be queued
    assert len(_exported_webhooks(emu, cap.id)) == 1


@pytest.mark.parametrize("emulator_config", [{"export_delay": 0.8}])
def test_an_explicit_export_while_exporting_finishes_it_once(emu, conn, receiver, emulator_config):
    cap = _played_and_stopped(emu, conn, receiver)
    result = conn.get_capture_session(cap.id).export()
    assert result["export_status"] == "exported"
    time.sleep(1.0)  # past the moment the export would have finished by itself
    after = conn.get_capture_session(cap.id)
    assert (after.status, after.exported_video_id) == ("exported", result["video_id"])
    assert len(_exported_webhooks(emu, cap.id)) == 1


@pytest.mark.parametrize("emulator_config", [{"export_delay": 0.1}])
def test_a_session_with_no_stored_channel_is_never_exported(emu, conn, receiver, emulator_config):
    cap = conn.create_capture_session(end_user_id="u", callback_url=receiver.url)
    desktop = videodb.connect(session_token=conn.generate_client_token(), base_url=emu.base_url)
    channels = [{"channel_id": "mic:default", "type": "audio", "store": False}]
    desktop.post("capture/session/start", data={"session_id": cap.id, "channels": channels})
    emu.control.wait_for_status(cap.id, "active")
    desktop.post(f"capture/session/{cap.id}/stop")
    emu.control.wait_for_status(cap.id, "stopped")
    time.sleep(0.4)  # four times the export delay

    stopped = conn.get_capture_session(cap.id)
    assert (stopped.status, stopped.export_status) == ("stopped", None)
    assert _exported_webhooks(emu, cap.id) == []
    with pytest.raises(InvalidRequestError, match="store: true") as info:
        stopped.export()
    assert info.value.response.status_code == 409


@pytest.mark.parametrize("emulator_config", [{"export_delay": 0.5}])
def test_a_session_failed_while_exporting_is_not_exported(emu, conn, receiver, emulator_config):
    cap = _played_and_stopped(emu, conn, receiver)
    emu.control.fail_session(cap.id, code="storage_error", message="Disk full")
    time.sleep(0.7)
    failed = conn.get_capture_session(cap.id)
    assert (failed.status, failed.export_status, failed.exported_video_id) == (
        "failed",
        "failed",
        None,
    )
    assert _exported_webhooks(emu, cap.id) == []


@pytest.mark.parametrize("emulator_config", [{"export_delay": None}])
def test_with_the_export_delay_off_a_session_is_exported_only_when_asked(
    emu, conn, receiver, emulator_config
):
    cap = _played_and_stopped(emu, conn, receiver)
    assert conn.get_capture_session(cap.id).export_status is None
    assert conn.get_capture_session(cap.id).export()["export_status"] == "exported"
    assert len(_exported_webhooks(emu, cap.id)) == 1
