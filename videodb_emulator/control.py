"""Control API under /_emulator/: drive meetings, inject faults, inspect traffic."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web

from .api_capture import core_of
from .auth import control_key_ok
from .errors import ApiError, bad_request, ok
from .faults import GENERATION_MODES
from .routing import Routes
from .scripts import ScriptError, parse_script, parse_text
from .state import ClientToken
from .validation import json_body, opt_bool, opt_number, opt_str

PREFIX = "_emulator"
routes = Routes()
MAX_SPEED = 10000.0


def _guard(request: web.Request) -> None:
    if not control_key_ok(core_of(request), request):
        raise ApiError(401, "control API needs an API key (x-access-token or Bearer)")


def _speed(body: dict[str, Any], default: float | None) -> float:
    speed = opt_number(body, "speed", minimum=0)
    if speed is None:
        if default is None:
            raise bad_request("'speed' is required")
        return default
    if speed <= 0 or speed > MAX_SPEED:
        raise bad_request(f"'speed' must be > 0 and <= {MAX_SPEED}")
    return speed


@routes.add("GET", f"{PREFIX}/state")
async def state(request: web.Request) -> web.Response:
    _guard(request)
    return ok(core_of(request).state_snapshot())


@routes.add("GET", f"{PREFIX}/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    _guard(request)
    core = core_of(request)
    items = core.webhooks.snapshot()
    session_id = request.query.get("session_id")
    if session_id:
        items = [d for d in items if d["body"].get("capture_session_id") == session_id]
    kind = request.query.get("kind")
    if kind:
        items = [d for d in items if d["kind"] == kind]
    return ok({"deliveries": items, "pending": core.webhooks.pending()})


@routes.add("GET", f"{PREFIX}/requests")
async def request_counts(request: web.Request) -> web.Response:
    _guard(request)
    return ok({"counts": dict(core_of(request).request_counts)})


@routes.add("DELETE", f"{PREFIX}/deliveries")
async def clear_deliveries(request: web.Request) -> web.Response:
    _guard(request)
    core_of(request).webhooks.clear_history()
    return ok({"cleared": True})


@routes.add("GET", f"{PREFIX}/scripts")
async def scripts(request: web.Request) -> web.Response:
    _guard(request)
    library = core_of(request).scripts
    out = []
    for name in library.names():
        try:
            out.append(library.get(name).summary())
        except ScriptError as exc:
            out.append({"name": name, "error": str(exc)})
    return ok({"scripts": out})


@routes.add("POST", f"{PREFIX}/sessions/{{sid}}/simulate")
async def simulate(request: web.Request) -> web.Response:
    _guard(request)
    core = core_of(request)
    session = core.session(request.match_info["sid"])
    body = await json_body(request)
    speed = _speed(body, 1.0)
    inline = body.get("script_inline")
    try:
        if inline is not None:
            name = opt_str(body, "script") or "inline"
            if isinstance(inline, dict):
                script = parse_script(inline, name=name)
            elif isinstance(inline, str):
                fmt = opt_str(body, "format") or "toml"
                if fmt not in ("toml", "json"):
                    raise bad_request("'format' must be 'toml' or 'json'")
                script = parse_text(inline, name=name, fmt=fmt)
            else:
                raise bad_request("'script_inline' must be an object or TOML/JSON text")
        else:
            script = core.scripts.get(opt_str(body, "script") or "product_planning")
    except ScriptError as exc:
        raise bad_request(f"invalid script: {exc}") from None
    if session.status not in ("created", "starting", "active"):
        raise ApiError(
            409,
            f"capture session is '{session.status}'; a meeting needs 'created' (the emulator "
            "plays the desktop client too) or 'starting'/'active' (a client started it)",
        )
    token = opt_str(body, "client_token")
    if token is not None and token not in core.store.client_tokens:
        raise ApiError(401, "unknown client token")
    try:
        if session.status == "created":
            meeting = core.meetings.start(session.id, script, speed, token)
        else:
            meeting = core.meetings.attach(session.id, script, speed)
    except ValueError as exc:
        raise ApiError(409, str(exc)) from None
    return ok(meeting.to_dict())


@routes.add("POST", f"{PREFIX}/sessions/{{sid}}/speed")
async def set_speed(request: web.Request) -> web.Response:
    _guard(request)
    core = core_of(request)
    body = await json_body(request, allow_empty=False)
    meeting = core.meetings.set_speed(request.match_info["sid"], _speed(body, None))
    if meeting is None:
        raise ApiError(404, f"no meeting for session '{request.match_info['sid']}'")
    return ok(meeting.to_dict())


@routes.add("POST", f"{PREFIX}/sessions/{{sid}}/fail")
async def fail(request: web.Request) -> web.Response:
    _guard(request)
    core = core_of(request)
    session = core.session(request.match_info["sid"])
    body = await json_body(request)
    code = opt_str(body, "code") or "capture_error"
    message = opt_str(body, "message") or "Capture failed (injected by the emulator)"
    core.fail_session(session, code, message)
    return ok(core.session_dict(session))


@routes.add("POST", f"{PREFIX}/sessions/{{sid}}/stop")
async def stop(request: web.Request) -> web.Response:
    _guard(request)
    core = core_of(request)
    session = core.session(request.match_info["sid"])
    core.meetings.cancel(session.id)
    core.stop_session(session)
    return ok(core.session_dict(session))


@routes.add("POST", f"{PREFIX}/sessions/{{sid}}/export")
async def export(request: web.Request) -> web.Response:
    _guard(request)
    core = core_of(request)
    body = await json_body(request)
    session = core.session(request.match_info["sid"])
    return ok(core.export_session(session, opt_str(body, "video_channel_id")))


@routes.add("POST", f"{PREFIX}/connections/drop")
async def drop_all(request: web.Request) -> web.Response:
    _guard(request)
    body = await json_body(request)
    dropped = await core_of(request).hub.drop_all(abort=bool(opt_bool(body, "abort")))
    return ok({"dropped": dropped})


@routes.add("POST", f"{PREFIX}/connections/{{cid}}/drop")
async def drop_one(request: web.Request) -> web.Response:
    _guard(request)
    body = await json_body(request)
    cid = request.match_info["cid"]
    if not await core_of(request).hub.drop(cid, abort=bool(opt_bool(body, "abort"))):
        raise ApiError(404, f"websocket connection '{cid}' not found")
    return ok({"dropped": [cid]})


@routes.add("POST", f"{PREFIX}/faults")
async def set_faults(request: web.Request) -> web.Response:
    _guard(request)
    body = await json_body(request, allow_empty=False)
    fail_count = opt_number(body, "fail_count", minimum=0, integer=True)
    status = opt_number(body, "status", minimum=500, integer=True)
    if status is not None and status > 599:
        raise bad_request("'status' must be a 5xx code")
    slow_count = opt_number(body, "slow_count", minimum=0, integer=True)
    delay = opt_number(body, "delay", minimum=0)
    if delay is not None and delay > 120:
        raise bad_request("'delay' must be <= 120 seconds")
    plan = core_of(request).faults
    plan.set(
        fail_count=None if fail_count is None else int(fail_count),
        fail_status=None if status is None else int(status),
        slow_count=None if slow_count is None else int(slow_count),
        delay=delay,
    )
    return ok(plan.to_dict())


@routes.add("DELETE", f"{PREFIX}/faults")
async def clear_faults(request: web.Request) -> web.Response:
    _guard(request)
    plan = core_of(request).faults
    plan.clear()
    return ok(plan.to_dict())


@routes.add("POST", f"{PREFIX}/faults/generate")
async def set_generate_faults(request: web.Request) -> web.Response:
    _guard(request)
    body = await json_body(request, allow_empty=False)
    mode = opt_str(body, "mode")
    if mode not in GENERATION_MODES:
        raise bad_request(f"'mode' must be one of {', '.join(GENERATION_MODES)}, got {mode!r}")
    count = opt_number(body, "count", minimum=1, integer=True) or 1
    if count > 1000:
        raise bad_request("'count' must be <= 1000")
    status = opt_number(body, "status", minimum=400, integer=True)
    if status is not None and status != 429 and not 500 <= status <= 599:
        raise bad_request("'status' must be 429 or a 5xx code")
    delay = opt_number(body, "delay", minimum=0)
    if delay is not None and delay > 120:
        raise bad_request("'delay' must be <= 120 seconds")
    plan = core_of(request).generate_faults
    plan.set(mode, int(count), None if status is None else int(status), delay)
    return ok(plan.to_dict())


@routes.add("DELETE", f"{PREFIX}/faults/generate")
async def clear_generate_faults(request: web.Request) -> web.Response:
    _guard(request)
    plan = core_of(request).generate_faults
    plan.clear()
    return ok(plan.to_dict())


_HOOK_FIELDS = {
    "timeout": float,
    "max_attempts": int,
    "backoff_base": float,
    "backoff_max": float,
    "duplicate_rate": float,
    "shuffle_window": int,
    "shuffle_linger": float,
    "seed": int,
    "include_event_id": bool,
}


@routes.add("POST", f"{PREFIX}/webhooks")
async def configure_webhooks(request: web.Request) -> web.Response:
    _guard(request)
    body = await json_body(request, allow_empty=False)
    changes: dict[str, Any] = {}
    for key, value in body.items():
        kind = _HOOK_FIELDS.get(key)
        if kind is None:
            raise bad_request(f"unknown webhook setting '{key}' (known: {', '.join(_HOOK_FIELDS)})")
        if kind is bool:
            changes[key] = opt_bool(body, key)
        elif value is None and key == "seed":
            changes[key] = None
        else:
            number = opt_number(body, key, minimum=0, integer=kind is int)
            if number is None:
                raise bad_request(f"'{key}' must not be null")
            changes[key] = kind(number)
    if changes.get("duplicate_rate", 0) > 1:
        raise bad_request("'duplicate_rate' must be between 0 and 1")
    if "max_attempts" in changes and changes["max_attempts"] < 1:
        raise bad_request("'max_attempts' must be >= 1")
    policy = core_of(request).configure_webhooks(**changes)
    return ok(json.loads(json.dumps(asdict(policy))))


@routes.add("POST", f"{PREFIX}/tokens")
async def mint_token(request: web.Request) -> web.Response:
    """Mint a client token without the SDK (handy for the CLI desktop-client role)."""
    _guard(request)
    body = await json_body(request)
    ttl = opt_number(body, "expires_in", minimum=1, integer=True) or 86400
    token = "ct-" + secrets.token_urlsafe(24)
    core_of(request).store.client_tokens[token] = ClientToken(token, time.time() + ttl)
    return ok({"token": token, "expires_in": int(ttl)})
