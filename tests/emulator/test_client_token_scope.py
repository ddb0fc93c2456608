"""A client token minted for one end user reaches only that end user's capture sessions,
and never sees a session's callback_url (the integrator's webhook, with its secret)."""

from __future__ import annotations

import pytest
import videodb
from videodb.exceptions import InvalidRequestError

CHANNELS = [{"channel_id": "mic:default", "type": "audio"}]
HOOK_A = "http://copilot.test/webhooks/videodb/secret-of-a/"
HOOK_B = "http://copilot.test/webhooks/videodb/secret-of-b/"


def _token_for(conn, end_user_id: str | None) -> str:
    data: dict = {"expires_in": 600}
    if end_user_id is not None:
        data["end_user_id"] = end_user_id
    # The SDK's generate_client_token sends expires_in only; this is its same request with
    # the end user named, through the SDK's own connection.
    return conn.post(path="capture/session/token", data=data)["token"]


def _refused(call) -> int:
    with pytest.raises(InvalidRequestError) as info:
        call()
    return info.value.response.status_code


def test_token_for_end_user_a_cannot_read_stop_or_start_b_session(emu, conn):
    cap_a = conn.create_capture_session(end_user_id="user-a", callback_url=HOOK_A)
    cap_b = conn.create_capture_session(end_user_id="user-b", callback_url=HOOK_B)
    desktop_a = videodb.connect(session_token=_token_for(conn, "user-a"), base_url=emu.base_url)

    assert _refused(lambda: desktop_a.get(f"capture/session/{cap_b.id}")) == 404
    assert _refused(lambda: desktop_a.post(f"capture/session/{cap_b.id}/stop")) == 404
    start_b = {"session_id": cap_b.id, "channels": CHANNELS, "callback_url": "http://evil.test/"}
    assert _refused(lambda: desktop_a.post("capture/session/start", data=start_b)) == 404
    b_now = conn.get_capture_session(cap_b.id)
    assert b_now.status == "created"
    assert conn.get(f"collection/default/capture/session/{cap_b.id}")["callback_url"] == HOOK_B

    # Its own session it may start, read and stop.
    started = desktop_a.post(
        "capture/session/start", data={"session_id": cap_a.id, "channels": CHANNELS}
    )
    assert started["status"] == "starting"
    assert desktop_a.get(f"capture/session/{cap_a.id}")["session_id"] == cap_a.id
    assert desktop_a.post(f"capture/session/{cap_a.id}/stop")["session_id"] == cap_a.id


def test_client_token_never_sees_callback_url(emu, conn):
    cap = conn.create_capture_session(end_user_id="user-a", callback_url=HOOK_A)
    for end_user in ("user-a", None):
        desktop = videodb.connect(session_token=_token_for(conn, end_user), base_url=emu.base_url)
        seen = desktop.get(f"capture/session/{cap.id}")
        assert seen["session_id"] == cap.id
        assert "callback_url" not in seen
        assert HOOK_A not in str(seen)
    # The API key still reads it.
    assert conn.get(f"collection/default/capture/session/{cap.id}")["callback_url"] == HOOK_A


def test_client_token_may_not_point_callbacks_elsewhere(emu, conn):
    cap = conn.create_capture_session(end_user_id="user-a", callback_url=HOOK_A)
    desktop = videodb.connect(session_token=_token_for(conn, "user-a"), base_url=emu.base_url)
    hijack = {"session_id": cap.id, "channels": CHANNELS, "callback_url": "http://evil.test/"}
    assert _refused(lambda: desktop.post("capture/session/start", data=hijack)) == 403
    assert conn.get(f"collection/default/capture/session/{cap.id}")["callback_url"] == HOOK_A
