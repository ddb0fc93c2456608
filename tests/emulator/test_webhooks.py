"""Lifecycle webhooks and alert callbacks: shapes, retries, duplicates, ordering."""

from __future__ import annotations

import itertools
import re
import time

import pytest
import videodb

from .helpers import TINY_SCRIPT, start_active_meeting, streams_by_category

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
LIFECYCLE = ["created", "starting", "active", "stopping", "stopped"]


def _run_meeting(emu, conn, receiver, speed=40.0, path="/hooks"):
    cap = conn.create_capture_session(end_user_id="user-7", callback_url=receiver.url + path)
    emu.control.simulate(cap.id, TINY_SCRIPT, speed=speed)
    emu.control.wait_for_status(cap.id, "stopped")
    return cap


def test_lifecycle_webhooks_follow_the_documented_envelope(emu, conn, receiver):
    cap = _run_meeting(emu, conn, receiver)
    bodies = receiver.wait_for(lambda: len(b := receiver.bodies()) >= 5 and b)
    assert [b["event"] for b in bodies] == [f"capture_session.{s}" for s in LIFECYCLE]
    for body in bodies:
        assert set(body) == {
            "version",
            "event",
            "timestamp",
            "capture_session_id",
            "end_user_id",
            "status",
            "data",
            "event_id",
        }
        assert body["version"] == "2"
        assert ISO_Z.match(body["timestamp"])
        assert body["capture_session_id"] == cap.id
        assert body["end_user_id"] == "user-7"
        assert body["event"] == f"capture_session.{body['status']}"
    active = bodies[2]
    rtstreams = active["data"]["rtstreams"]
    assert {(r["name"], tuple(r["media_types"])) for r in rtstreams} == {
        ("mic:default", ("audio",)),
        ("system_audio:default", ("audio",)),
        ("display:1", ("video",)),
    }
    assert {r["rtstream_id"] for r in rtstreams} == {
        r.id for r in conn.get_capture_session(cap.id).rtstreams
    }
    assert len({b["event_id"] for b in bodies}) == 5

    conn.get_capture_session(cap.id).export()
    exported = receiver.wait_for(
        lambda: [b for b in receiver.bodies() if b["event"] == "capture_session.exported"]
    )[0]
    assert set(exported["data"]) == {"exported_video_id", "stream_url", "player_url", "duration"}
    assert (
        exported["data"]["exported_video_id"] == conn.get_capture_session(cap.id).exported_video_id
    )
    assert exported["data"]["duration"] > 0


def test_failed_session_sends_failed_webhook_with_error_object(emu, conn, receiver):
    cap = conn.create_capture_session(end_user_id="u", callback_url=receiver.url)
    emu.control.simulate(cap.id, TINY_SCRIPT, speed=1)
    emu.control.wait_for_status(cap.id, "active")
    emu.control.fail_session(cap.id, code="device_lost", message="Screen capture stopped")
    failed = receiver.wait_for(
        lambda: [b for b in receiver.bodies() if b["event"] == "capture_session.failed"]
    )[0]
    assert failed["status"] == "failed"
    assert failed["data"] == {"error": {"code": "device_lost", "message": "Screen capture stopped"}}
    assert conn.get_capture_session(cap.id).status == "failed"
    assert emu.control.wait_for_meeting(cap.id)["state"] == "cancelled"


@pytest.mark.parametrize("emulator_config", [{"webhook_backoff_base": 0.1}])
def test_non_2xx_answers_are_retried_with_backoff_until_accepted(
    emu, conn, receiver, emulator_config
):
    receiver.script = [500, 500, 503]
    cap = conn.create_capture_session(end_user_id="u", callback_url=receiver.url + "/flaky")
    receiver.wait_for(lambda: receiver.accepted())
    # The receiver has answered 200; the emulator records it once that answer is read.
    emu.control.wait_for(
        lambda: [d for d in emu.control.deliveries(cap.id) if d["state"] != "pending"]
    )
    (delivery,) = emu.control.deliveries(session_id=cap.id)
    assert delivery["state"] == "delivered"
    assert [a["status"] for a in delivery["attempts"]] == [500, 500, 503, 200]
    times = [r["at"] for r in receiver.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[1] > gaps[0] * 1.3, f"backoff should grow: {gaps}"
    # Every attempt carried the same event.
    assert len({r["body"]["event_id"] for r in receiver.requests}) == 1


@pytest.mark.parametrize("emulator_config", [{"webhook_max_attempts": 3}])
def test_delivery_gives_up_after_the_configured_number_of_attempts(emu, conn, emulator_config):
    cap = conn.create_capture_session(end_user_id="u", callback_url="http://127.0.0.1:9/closed")
    delivery = emu.control.wait_for(
        lambda: [d for d in emu.control.deliveries(cap.id) if d["state"] == "failed"]
    )[0]
    assert len(delivery["attempts"]) == 3
    assert all(a["status"] is None and a["error"] for a in delivery["attempts"])


@pytest.mark.parametrize("emulator_config", [{"duplicate_rate": 1.0, "seed": 7}])
def test_duplicates_share_the_event_id_of_the_original(emu, conn, receiver, emulator_config):
    _run_meeting(emu, conn, receiver)
    bodies = receiver.wait_for(lambda: len(b := receiver.bodies()) >= 10 and b)
    by_id: dict[str, list[dict]] = {}
    for body in bodies:
        by_id.setdefault(body["event_id"], []).append(body)
    assert len(by_id) == 5
    assert all(len(copies) == 2 and copies[0] == copies[1] for copies in by_id.values())


def _lifecycle_order(emu, conn, receiver, path):
    cap = conn.create_capture_session(end_user_id="u", callback_url=receiver.url + path)
    emu.control.simulate(cap.id, TINY_SCRIPT, speed=1)
    emu.control.wait_for_status(cap.id, "active")
    emu.control.stop_session(cap.id)
    bodies = receiver.wait_for(lambda: len(b := receiver.bodies(path)) >= 5 and b)
    return [b["status"] for b in bodies]


# The linger is long enough for all five lifecycle events to land in one batch.
SHUFFLED = {"shuffle_window": 5, "shuffle_linger": 1.0, "seed": 3}


@pytest.mark.parametrize("emulator_config", [SHUFFLED])
def test_shuffle_window_delivers_out_of_order_deterministically_per_seed(
    emu, conn, receiver, emulator_config
):
    from videodb_emulator.testing import running_emulator

    from .conftest import FAST_WEBHOOKS

    order = _lifecycle_order(emu, conn, receiver, "/first")
    assert sorted(order) == sorted(LIFECYCLE)
    assert order != LIFECYCLE
    with running_emulator(**{**FAST_WEBHOOKS, **SHUFFLED}) as again:
        conn2 = videodb.connect(api_key=again.api_key, base_url=again.base_url)
        assert _lifecycle_order(again, conn2, receiver, "/second") == order


@pytest.mark.parametrize("emulator_config", [{"include_event_id": False}])
def test_event_id_can_be_switched_off_to_exercise_fallback_dedupe(
    emu, conn, receiver, emulator_config
):
    conn.create_capture_session(end_user_id="u", callback_url=receiver.url)
    body = receiver.wait_for(lambda: receiver.bodies())[0]
    assert "event_id" not in body
    emu.control.configure_webhooks(include_event_id=True)
    conn.create_capture_session(end_user_id="u", callback_url=receiver.url)
    assert "event_id" in receiver.wait_for(lambda: len(b := receiver.bodies()) == 2 and b)[1]


def test_webhook_config_changes_at_runtime_through_the_control_api(emu, conn, receiver):
    emu.control.configure_webhooks(duplicate_rate=1.0, seed=1)
    conn.create_capture_session(end_user_id="u", callback_url=receiver.url)
    bodies = receiver.wait_for(lambda: len(b := receiver.bodies()) == 2 and b)
    assert bodies[0] == bodies[1]


def test_a_slow_receiver_that_calls_the_api_back_does_not_block_the_api(emu, conn, receiver):
    timings: list[float] = []
    callback_conn = videodb.connect(api_key=emu.api_key, base_url=emu.base_url)

    def call_back(entry):
        # Like VideoDB's samples: read the session back before answering, slowly.
        started = time.monotonic()
        session = callback_conn.get_capture_session(entry["body"]["capture_session_id"])
        timings.append(time.monotonic() - started)
        assert session.status

    receiver.on_request = call_back
    receiver.delay = 1.0
    started = time.monotonic()
    cap = conn.create_capture_session(end_user_id="u", callback_url=receiver.url)
    assert time.monotonic() - started < 0.5
    time.sleep(0.2)  # the created delivery is now open
    for _ in range(5):
        t0 = time.monotonic()
        conn.get_capture_session(cap.id)
        assert time.monotonic() - t0 < 0.3
    receiver.wait_for(lambda: receiver.bodies())
    assert timings and max(timings) < 0.5


def test_alert_callback_has_the_documented_shape_without_an_event_field(emu, conn, receiver):
    cap = start_active_meeting(emu, conn)
    system = streams_by_category(conn, cap.id)["system_audio"]
    event_id = conn.create_event("Tell me when someone says the price is too high", "too_pricey")
    index = system.index_audio(prompt="p")
    alert_id = index.create_alert(event_id, callback_url=receiver.url + "/alerts")
    emu.control.set_speed(cap.id, 20)
    (body,) = receiver.wait_for(lambda: receiver.bodies("/alerts"))
    assert "event" not in body
    assert body["event_id"] == event_id
    assert body["alert_id"] == alert_id
    assert body["label"] == "too_pricey"
    assert body["confidence"] == 0.87
    assert body["explanation"] == "Customer objects to enterprise pricing."
    assert ISO_Z.match(body["timestamp"])
    assert 1.7e9 < body["start_time"] < body["end_time"] < 2.1e9
    assert body["stream_url"].startswith(emu.base_url)
    assert body["player_url"].startswith(emu.base_url)


def test_disabled_alert_does_not_fire(emu, conn, receiver):
    cap = start_active_meeting(emu, conn)
    system = streams_by_category(conn, cap.id)["system_audio"]
    event_id = conn.create_event("pricing", "pricing_objection")
    index = system.index_audio(prompt="p")
    index.disable_alert(index.create_alert(event_id, callback_url=receiver.url + "/alerts"))
    emu.control.set_speed(cap.id, 20)
    emu.control.wait_for_meeting(cap.id)
    time.sleep(0.1)
    assert receiver.bodies("/alerts") == []
