"""The real SDK against the emulator: capture sessions, tokens, exports, errors."""

from __future__ import annotations

import time
import urllib.request

import pytest
import videodb
from videodb.exceptions import AuthenticationError, InvalidRequestError

from .helpers import TINY_SCRIPT, start_active_meeting

DESKTOP_CHANNELS = [
    {"channel_id": "mic:default", "name": "Mic", "type": "audio", "store": True},
    {"channel_id": "system_audio:default", "name": "System", "type": "audio", "store": True},
    {"channel_id": "display:1", "name": "Display", "type": "video", "store": True},
]


def test_create_get_and_list_capture_sessions_round_trip_through_the_sdk(conn):
    cap = conn.create_capture_session(
        end_user_id="user-42", callback_url="http://127.0.0.1:9/hook", metadata={"app": "copilot"}
    )
    assert cap.id.startswith("cap-")
    assert cap.status == "created"
    assert cap.end_user_id == "user-42"
    assert cap.metadata == {"app": "copilot"}
    assert cap.rtstreams == []

    again = conn.get_capture_session(cap.id)
    assert (again.id, again.status, again.callback_url) == (
        cap.id,
        "created",
        "http://127.0.0.1:9/hook",
    )
    listed = conn.list_capture_sessions()
    assert [s.id for s in listed] == [cap.id]
    assert conn.list_capture_sessions(status="active") == []


def test_desktop_client_token_starts_and_stops_a_session_with_one_rtstream_per_channel(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    token = conn.generate_client_token(expires_in=600)
    # The SDK's own way to hold a client token; it goes out in the same x-access-token header.
    desktop = videodb.connect(session_token=token, base_url=emu.base_url)
    started = desktop.post(
        "capture/session/start", data={"session_id": cap.id, "channels": DESKTOP_CHANNELS}
    )
    assert started == {"session_id": cap.id, "status": "starting"}
    emu.control.wait_for_status(cap.id, "active")

    seen_by_client = desktop.get(f"capture/session/{cap.id}")
    assert seen_by_client["status"] == "active"

    cap = conn.get_capture_session(cap.id)
    by_category = {r.channel_id: r for r in cap.rtstreams}
    assert set(by_category) == {"mic", "system_audio", "screen"}
    assert by_category["mic"].name == "mic:default"
    assert by_category["system_audio"].name == "system_audio:default"
    assert by_category["screen"].name == "display:1"
    assert [r.name for r in cap.get_rtstream("MIC")] == ["mic:default"]
    raw = conn.get(f"collection/default/capture/session/{cap.id}")
    assert {r["name"]: r["media_types"] for r in raw["rtstreams"]} == {
        "mic:default": ["audio"],
        "system_audio:default": ["audio"],
        "display:1": ["video"],
    }
    assert [c.id for c in cap.channels] == ["mic:default", "system_audio:default", "display:1"]
    assert cap.primary_video_channel_id == "display:1"

    rts = conn.get_collection().get_rtstream(by_category["mic"].id)
    assert (rts.id, rts.name, rts.channel_id) == (by_category["mic"].id, "mic:default", "mic")

    assert desktop.post(f"capture/session/{cap.id}/stop")["status"] == "stopping"
    emu.control.wait_for_status(cap.id, "stopped")


def test_client_token_may_not_create_sessions_mint_tokens_or_start_ai(emu, conn):
    cap = start_active_meeting(emu, conn)
    token = conn.generate_client_token()
    desktop = videodb.connect(api_key=token, base_url=emu.base_url)
    rts_id = conn.get_capture_session(cap.id).rtstreams[0].id
    misuse = [
        lambda: desktop.create_capture_session(end_user_id="x"),
        lambda: desktop.generate_client_token(),
        lambda: desktop.list_capture_sessions(),
        lambda: desktop.post(f"rtstream/{rts_id}/transcription", data={"action": "start"}),
        lambda: desktop.create_event("prompt", "label"),
    ]
    for call in misuse:
        with pytest.raises(InvalidRequestError) as info:
            call()
        assert info.value.response.status_code == 403
        assert "client token" in str(info.value)
    # ...but it may open the WebSocket.
    assert desktop.connect_websocket().url.startswith("ws://")


def test_expired_client_token_is_rejected_with_authentication_error(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    token = conn.generate_client_token(expires_in=1)
    desktop = videodb.connect(api_key=token, base_url=emu.base_url)
    assert desktop.get(f"capture/session/{cap.id}")["status"] == "created"
    time.sleep(1.1)
    with pytest.raises(AuthenticationError, match="expired"):
        desktop.get(f"capture/session/{cap.id}")


def test_wrong_or_missing_api_key_raises_authentication_error(emu):
    with pytest.raises(AuthenticationError):
        videodb.connect(api_key="not-a-key", base_url=emu.base_url).list_capture_sessions()
    with pytest.raises(AuthenticationError):
        videodb.connect(api_key="not-a-key", base_url=emu.base_url).get_collection()


def test_unknown_ids_raise_invalid_request_error_with_404(conn):
    for call in (
        lambda: conn.get_capture_session("cap-missing"),
        lambda: conn.get_collection().get_rtstream("rts-missing"),
        lambda: conn.get_collection("nope"),
    ):
        with pytest.raises(InvalidRequestError) as info:
            call()
        assert info.value.response.status_code == 404
        assert "not found" in str(info.value)


def test_several_api_keys_are_accepted_when_configured():
    from videodb_emulator.testing import running_emulator

    with running_emulator(api_keys=("k1", "k2")) as emu:
        for key in ("k1", "k2"):
            conn = videodb.connect(api_key=key, base_url=emu.base_url)
            assert conn.list_capture_sessions() == []
        with pytest.raises(AuthenticationError):
            videodb.connect(api_key="emulator-dev-key", base_url=emu.base_url).get_collection()


def test_export_returns_video_and_urls_that_answer_200(emu, conn):
    cap = start_active_meeting(emu, conn, speed=20)
    emu.control.wait_for_status(cap.id, "stopped")
    cap = conn.get_capture_session(cap.id)
    result = cap.export()
    assert result["export_status"] == "exported"
    assert result["video_id"]
    assert conn.get_capture_session(cap.id).exported_video_id == result["video_id"]
    assert conn.get_capture_session(cap.id).status == "exported"
    for url in (result["stream_url"], result["player_url"]):
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local emulator
            assert resp.status == 200
    # Idempotent: a second export returns the same asset.
    assert cap.export()["video_id"] == result["video_id"]


def test_export_of_a_running_session_is_refused(emu, conn):
    cap = start_active_meeting(emu, conn)
    with pytest.raises(InvalidRequestError, match="stopped"):
        conn.get_capture_session(cap.id).export()


def test_simulated_meeting_plays_through_every_lifecycle_state(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    emu.control.simulate(cap.id, TINY_SCRIPT, speed=30)
    meeting = emu.control.wait_for_meeting(cap.id)
    assert meeting["state"] == "finished"
    emu.control.wait_for_status(cap.id, "stopped")
    assert [s.id for s in conn.list_capture_sessions(status="stopped")] == [cap.id]
