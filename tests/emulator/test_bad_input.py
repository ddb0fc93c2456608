"""Bad input gets SDK-shaped 4xx answers and never crashes the emulator."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest
import videodb
from videodb.exceptions import AuthenticationError, InvalidRequestError

from .helpers import start_active_meeting, streams_by_category

JUNK_BODIES = [
    b"",
    b"not json",
    b"[1, 2, 3]",
    b"null",
    b'"string"',
    b"{",
    json.dumps(
        {"action": 5, "end_user_id": 7, "channels": "x", "query": [], "speed": "fast"}
    ).encode(),
    json.dumps({"session_id": None, "channels": [1, {"channel_id": "tv:1"}]}).encode(),
    json.dumps({"prompt": {}, "extraction_type": "weird", "extraction_config": 3}).encode(),
    json.dumps(
        {"expires_in": -5, "status": "on", "event_id": 1, "callback_url": "ftp://x"}
    ).encode(),
    "\udcff".encode("utf-8", "surrogatepass"),
]
# Placeholder ids: unknown to the emulator, so these calls exercise the 404 paths.
UNKNOWN_IDS = {
    "coll": "default",
    "sid": "cap-x",
    "rid": "rts-x",
    "iid": "rtsi-x",
    "aid": "alrt-x",
    "cid": "ws-x",
    "vid": "m-x",
    "token": "upl-x",
}


def _call(url, method, body, key):
    req = urllib.request.Request(url, data=body, method=method, headers={"x-access-token": key})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _routes(emu, ids):
    """Every registered (method, path) with its placeholders filled from ``ids``."""
    app_routes = []
    for resource in emu.server._runner.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path is None or path.startswith("/_media") or path == "/ws":
            continue
        for route in resource:
            filled = re.sub(r"\{(\w+)[^}]*\}", lambda m: ids[m[1]], path)
            app_routes.append((route.method, filled))
    # Control routes last: they may stop or fail the session the other calls use.
    return sorted(app_routes, key=lambda r: r[1].startswith("/_emulator"))


def _fire_junk(emu, routes):
    for method, path in routes:
        for key in (emu.api_key, "wrong-key"):
            for body in JUNK_BODIES:
                status, raw = _call(emu.base_url + path, method, body, key)
                assert 400 <= status < 500 or status == 200, (method, path, body, status, raw)
                payload = json.loads(raw)
                if status >= 400:
                    assert payload["success"] is False and payload["message"], payload


def test_junk_at_every_route_gets_a_4xx_json_error_and_never_a_500(emu, conn):
    # Real ids too, so that body validation (not just the 404) is exercised.
    cap = start_active_meeting(emu, conn, speed=0.01)
    mic = streams_by_category(conn, cap.id)["mic"]
    index = mic.index_audio(prompt="p")
    alert_id = index.create_alert(conn.create_event("p", "l"), "http://127.0.0.1:9/a")
    ws_id = emu.control.state()["websocket"]["connections"] or [{"connection_id": "ws-x"}]
    real_ids = {
        "coll": "default",
        "sid": cap.id,
        "rid": mic.id,
        "iid": index.rtstream_index_id,
        "aid": alert_id,
        "cid": ws_id[0]["connection_id"],
        "vid": "m-x",  # a video exists only once a session is exported
        "token": conn.get("collection/default/upload_url")["upload_url"].rsplit("/", 1)[1],
    }
    unknown_routes = _routes(emu, UNKNOWN_IDS)
    assert len(unknown_routes) > 40
    _fire_junk(emu, unknown_routes)
    _fire_junk(emu, _routes(emu, real_ids))
    # Still alive and well (the junk may legitimately have stopped or failed the session).
    assert conn.get_capture_session(cap.id).id == cap.id
    assert conn.list_capture_sessions()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "collection/default/capture/session", b"{}", 400, "'end_user_id' is required"),
        ("POST", "collection/default/capture/session", b"{x", 400, "not valid JSON"),
        (
            "POST",
            "collection/default/capture/session",
            b'{"end_user_id": 3}',
            400,
            "non-empty string",
        ),
        (
            "POST",
            "capture/session/token",
            b'{"expires_in": "soon"}',
            400,
            "'expires_in' must be a number",
        ),
        ("DELETE", "collection/default/capture/session", b"", 405, "not allowed"),
        ("GET", "rtstream/rts-nope", b"", 404, "not found"),
        ("GET", "no/such/path", b"", 404, "no such endpoint"),
    ],
)
def test_bad_requests_say_what_is_wrong(emu, method, path, body, status, message):
    code, raw = _call(f"{emu.base_url}/{path}", method, body or None, emu.api_key)
    assert code == status
    assert message in json.loads(raw)["message"]


def test_paths_answer_with_and_without_trailing_slash(emu, conn):
    for path in ("collection/default/capture/session", "collection/default/capture/session/"):
        code, raw = _call(f"{emu.base_url}/{path}", "GET", None, emu.api_key)
        assert code == 200
        assert json.loads(raw) == {"success": True, "data": {"sessions": []}, "message": "ok"}


def test_missing_key_is_401(emu):
    req = urllib.request.Request(f"{emu.base_url}/collection/default")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)  # noqa: S310
    assert info.value.code == 401


def test_websocket_without_a_valid_ticket_is_refused(emu):
    code, raw = _call(f"{emu.base_url}/ws?ticket=forged", "GET", None, emu.api_key)
    assert code == 401
    assert "ticket" in json.loads(raw)["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": {}}, "'status' must be 'enabled' or 'disabled', got dict"),
        ({"status": [None]}, "'status' must be 'enabled' or 'disabled', got list"),
        ({"status": "on"}, "'status' must be 'enabled' or 'disabled', got 'on'"),
        ({"action": {}}, "'action' must be 'enable' or 'disable', got dict"),
        ({"action": None}, "'action' must be 'enable' or 'disable', got null"),
        ({"state": "enabled"}, "body must be {'action': 'enable'|'disable'}"),
    ],
)
def test_alert_status_bodies_of_the_wrong_type_are_400_naming_the_field(emu, conn, body, message):
    cap = start_active_meeting(emu, conn, speed=0.01)
    mic = streams_by_category(conn, cap.id)["mic"]
    index = mic.index_audio(prompt="p")
    alert_id = index.create_alert(conn.create_event("p", "l"), "http://127.0.0.1:9/a")
    path = f"rtstream/{mic.id}/index/{index.rtstream_index_id}/alert/{alert_id}/status"
    with pytest.raises(InvalidRequestError) as info:
        conn.patch(path, data=body)
    assert info.value.response.status_code == 400
    assert message in info.value.response.json()["message"]
    index.disable_alert(alert_id)  # the SDK's own body still works
    assert index.list_alerts()[0]["status"] == "disabled"


def test_a_request_without_a_valid_key_is_401_before_routing(emu):
    stranger = videodb.connect(api_key="not-a-key", base_url=emu.base_url)
    for path in ("no/such/path", "collection/default", "video/m-x/ask"):
        with pytest.raises(AuthenticationError, match="invalid API key or token"):
            stranger.get(path)
    for path in ("no/such/path", "_emulator/no/such", "_emulator/state"):
        code, raw = _call(f"{emu.base_url}/{path}", "GET", None, "")
        assert code == 401, path
        assert json.loads(raw)["success"] is False


def test_an_unknown_route_with_a_key_is_404(emu, conn):
    with pytest.raises(InvalidRequestError, match="no such endpoint: GET /no/such/path") as info:
        conn.get("no/such/path")
    assert info.value.response.status_code == 404


def test_a_405_names_the_allowed_methods_in_an_allow_header(emu):
    req = urllib.request.Request(  # noqa: S310 - local emulator
        f"{emu.base_url}/collection/default/capture/session",
        method="DELETE",
        headers={"x-access-token": emu.api_key},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)  # noqa: S310
    assert info.value.code == 405
    assert info.value.headers["Allow"] == "GET, POST"
    assert "(allowed: GET, POST)" in json.loads(info.value.read())["message"]


@pytest.mark.parametrize(
    ("end_user_id", "message"),
    [("", "it is empty"), ("   ", "it is only whitespace")],
)
def test_an_empty_string_is_called_empty(conn, end_user_id, message):
    with pytest.raises(InvalidRequestError, match=f"'end_user_id' must be .*; {message}"):
        conn.create_capture_session(end_user_id=end_user_id)


def test_an_empty_body_is_called_empty(emu):
    code, raw = _call(f"{emu.base_url}/rtstream/event", "POST", b"", emu.api_key)
    assert (code, json.loads(raw)["message"]) == (
        400,
        "request body is empty; it must be a JSON object",
    )
