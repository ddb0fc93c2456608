"""Control API and fault injection, through the ControlClient and the SDK."""

from __future__ import annotations

import time

import pytest
import videodb
from videodb.exceptions import InvalidRequestError

from videodb_emulator.control_client import ControlClient, ControlError

from .helpers import TINY_SCRIPT, Listener, start_active_meeting


def test_control_api_requires_an_api_key(emu):
    with pytest.raises(ControlError) as info:
        ControlClient(emu.base_url, "wrong").state()
    assert info.value.status == 401


def test_next_calls_fail_with_the_chosen_5xx_status(emu, conn):
    emu.control.inject_faults(fail_count=2, status=500)
    for _ in range(2):
        with pytest.raises(InvalidRequestError, match="injected fault") as info:
            conn.list_capture_sessions()
        assert info.value.response.status_code == 500
    assert conn.list_capture_sessions() == []
    assert emu.control.state()["faults"]["injected"] == 2


def test_a_single_503_is_absorbed_by_the_sdks_own_retry(emu, conn):
    # SDK 0.5.1 mounts urllib3 Retry(total=1, status_forcelist=[502, 503, 504]).
    emu.control.inject_faults(fail_count=1, status=503)
    assert conn.list_capture_sessions() == []
    emu.control.inject_faults(fail_count=2, status=503)
    with pytest.raises(InvalidRequestError, match="Max retries"):
        conn.list_capture_sessions()


def test_next_calls_can_be_slowed_down(emu, conn):
    emu.control.inject_faults(slow_count=1, delay=0.4)
    started = time.monotonic()
    conn.list_capture_sessions()
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    conn.list_capture_sessions()
    assert time.monotonic() - started < 0.3
    emu.control.inject_faults(fail_count=5)
    emu.control.clear_faults()
    assert conn.list_capture_sessions() == []


def test_simulator_survives_injected_faults_on_its_own_start_call(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    emu.control.inject_faults(fail_count=2, status=500)
    emu.control.simulate(cap.id, TINY_SCRIPT, speed=40)
    assert emu.control.wait_for_meeting(cap.id)["state"] == "finished"


def test_speed_can_change_while_a_meeting_plays(emu, conn):
    cap = start_active_meeting(emu, conn, speed=0.5)
    time.sleep(0.2)
    assert emu.control.meeting(cap.id)["script_time"] < 0.5
    emu.control.set_speed(cap.id, 50)
    started = time.monotonic()
    emu.control.wait_for_meeting(cap.id)
    assert time.monotonic() - started < 2


def test_state_lists_sessions_connections_meetings_and_deliveries(emu, conn, receiver):
    async def scenario():
        ws = await conn.connect_websocket().connect()
        listener = Listener(ws)
        cap = start_active_meeting(emu, conn, callback_url=receiver.url)
        state = emu.control.state()
        assert [s["session_id"] for s in state["sessions"]] == [cap.id]
        assert [c["connection_id"] for c in state["websocket"]["connections"]] == [ws.connection_id]
        assert state["meetings"][0]["script"] == "tiny_meeting"
        receiver.wait_for(lambda: len(receiver.bodies()) >= 3)
        deliveries = emu.control.deliveries(session_id=cap.id)
        assert [d["event"] for d in deliveries][:3] == [
            "capture_session.created",
            "capture_session.starting",
            "capture_session.active",
        ]
        assert deliveries[0]["attempts"][0]["status"] == 200
        assert emu.control.drop_connection() == [ws.connection_id]
        await listener.stop()

    import asyncio

    asyncio.run(scenario())


def test_request_counts_tally_rest_calls_by_method_and_path(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    conn.get_capture_session(cap.id)
    conn.get_capture_session(cap.id)
    counts = emu.control.request_counts()
    assert counts["POST collection/default/capture/session"] == 1
    assert counts[f"GET collection/default/capture/session/{cap.id}"] == 2
    assert not any(key.split(" ", 1)[1].startswith("_emulator") for key in counts)


def test_dropping_an_unknown_connection_is_a_404(emu):
    with pytest.raises(ControlError) as info:
        emu.control.drop_connection("ws-nope")
    assert info.value.status == 404


def test_simulate_rejects_invalid_scripts_and_unknown_sessions(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    with pytest.raises(ControlError, match="duration"):
        emu.control.simulate(cap.id, {"title": "x"})
    with pytest.raises(ControlError, match="unknown script"):
        emu.control.simulate(cap.id, "no_such_script")
    with pytest.raises(ControlError) as info:
        emu.control.simulate("cap-missing", "product_planning")
    assert info.value.status == 404


def test_bundled_scripts_are_listed(emu):
    names = {s["name"] for s in emu.control.scripts()}
    assert {"product_planning", "sales_call", "incident_review"} <= names


def test_client_token_passed_to_simulate_is_used_by_the_desktop_role(emu, conn):
    cap = conn.create_capture_session(end_user_id="u")
    token = conn.generate_client_token(expires_in=60)
    emu.control.simulate(cap.id, TINY_SCRIPT, speed=40, client_token=token)
    assert emu.control.wait_for_meeting(cap.id)["state"] == "finished"
    emu.control.wait_for_status(cap.id, "stopped")
    desktop = videodb.connect(api_key=token, base_url=emu.base_url)
    assert desktop.get(f"capture/session/{cap.id}")["status"] == "stopped"
