"""REST handlers: collection, capture sessions, client tokens, WebSocket URL."""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from .auth import CORE, PRINCIPAL, api, check_reach, client_of, for_caller
from .core import Emulator
from .errors import ApiError, bad_request, ok
from .hub import owner_of
from .routing import Routes
from .state import (
    DEFAULT_COLLECTION,
    SESSION_STATUSES,
    ClientToken,
    DesktopChannel,
    WsTicket,
    category_of,
)
from .validation import json_body, opt_bool, opt_dict, opt_number, opt_str, req_str

routes = Routes()
MAX_TOKEN_TTL = 30 * 86400


def core_of(request: web.Request) -> Emulator:
    return request.app[CORE]  # type: ignore[return-value]


def collection_id(request: web.Request) -> str:
    coll = request.match_info["coll"]
    if coll != DEFAULT_COLLECTION:
        raise ApiError(404, f"collection '{coll}' not found (the emulator has only 'default')")
    return coll


@routes.add("GET", "collection/{coll}")
@api()
async def get_collection(request: web.Request) -> web.Response:
    coll = collection_id(request)
    return ok({"id": coll, "name": "Default Collection", "description": "", "is_public": False})


@routes.add("POST", "collection/{coll}/capture/session")
@api()
async def create_session(request: web.Request) -> web.Response:
    coll = collection_id(request)
    body = await json_body(request, allow_empty=False)
    session = core_of(request).create_session(
        end_user_id=req_str(body, "end_user_id"),
        collection_id=coll,
        callback_url=_url(body, "callback_url"),
        ws_connection_id=opt_str(body, "ws_connection_id"),
        metadata=opt_dict(body, "metadata"),
    )
    return ok(core_of(request).session_dict(session))


def _url(body: dict[str, Any], key: str) -> str | None:
    value = opt_str(body, key)
    if value is not None and not value.startswith(("http://", "https://")):
        raise bad_request(f"'{key}' must be an http(s) URL")
    return value


@routes.add("GET", "collection/{coll}/capture/session")
@api()
async def list_sessions(request: web.Request) -> web.Response:
    coll = collection_id(request)
    status = request.query.get("status")
    if status and status not in SESSION_STATUSES:
        raise bad_request(f"'status' must be one of {', '.join(SESSION_STATUSES)}")
    core = core_of(request)
    sessions = [
        core.session_dict(s)
        for s in core.store.sessions.values()
        if s.collection_id == coll and (not status or s.status == status)
    ]
    return ok({"sessions": sessions})


@routes.add("GET", "collection/{coll}/capture/session/{sid}")
@api()
async def get_session(request: web.Request) -> web.Response:
    collection_id(request)
    core = core_of(request)
    return ok(core.session_dict(core.session(request.match_info["sid"])))


@routes.add("GET", "capture/session/{sid}")
@api(client_ok=True)
async def client_get_session(request: web.Request) -> web.Response:
    core = core_of(request)
    session = core.session(request.match_info["sid"])
    check_reach(request, session)
    return ok(for_caller(request, core.session_dict(session)))


@routes.add("POST", "capture/session/token")
@api()
async def create_token(request: web.Request) -> web.Response:
    body = await json_body(request)
    expires_in = opt_number(body, "expires_in", minimum=1, integer=True) or 86400
    if expires_in > MAX_TOKEN_TTL:
        raise bad_request(f"'expires_in' must be <= {MAX_TOKEN_TTL}")
    # The SDK's generate_client_token sends only expires_in; an integrator that names the
    # end user (as create_capture_session does) gets a token that reaches only that user's
    # sessions. Without one the token is not narrowed (see README, "Client tokens").
    end_user_id = opt_str(body, "end_user_id")
    token = "ct-" + secrets.token_urlsafe(24)
    expires_at = time.time() + expires_in
    core = core_of(request)
    core.store.purge_expired(time.time())
    core.store.client_tokens[token] = ClientToken(token, expires_at, end_user_id)
    answer: dict[str, Any] = {
        "token": token,
        "expires_in": int(expires_in),
        "expires_at": int(expires_at),
    }
    if end_user_id is not None:
        answer["end_user_id"] = end_user_id
    return ok(answer)


def _channels(body: dict[str, Any]) -> list[DesktopChannel]:
    raw = body.get("channels")
    if raw is None:
        raise bad_request("'channels' is required (a non-empty list)")
    if not isinstance(raw, list) or not raw:
        raise bad_request("'channels' must be a non-empty list")
    seen: set[str] = set()
    channels = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise bad_request(f"channels[{i}] must be an object")
        cid = item.get("channel_id")
        if not isinstance(cid, str) or category_of(cid) is None:
            raise bad_request(
                f"channels[{i}].channel_id must be like 'mic:default', 'display:1' or "
                f"'system_audio:default', got {cid!r}"
            )
        if cid in seen:
            raise bad_request(f"channels[{i}].channel_id {cid!r} is listed twice")
        seen.add(cid)
        category = category_of(cid)
        ch_type = item.get("type", "video" if category == "screen" else "audio")
        if ch_type not in ("audio", "video"):
            raise bad_request(f"channels[{i}].type must be 'audio' or 'video'")
        name = opt_str(item, "name") or cid
        store = opt_bool(item, "store")
        primary = opt_bool(item, "is_primary")
        channels.append(DesktopChannel(cid, name, ch_type, store is not False, bool(primary)))
    return channels


@routes.add("POST", "capture/session/start")
@api(client_ok=True)
async def client_start(request: web.Request) -> web.Response:
    body = await json_body(request, allow_empty=False)
    session_id = req_str(body, "session_id")
    channels = _channels(body)
    core = core_of(request)
    session = core.session(session_id)
    check_reach(request, session)
    callback_url = _url(body, "callback_url")
    replaces = bool(callback_url and session.callback_url and callback_url != session.callback_url)
    if replaces and client_of(request) is not None:
        # The callback URL the API key set is the integrator's; a desktop client may not
        # send its webhooks elsewhere.
        raise ApiError(403, "a client token may not replace the session's callback_url")
    core.client_start(
        session,
        channels,
        ws_connection_id=opt_str(body, "ws_connection_id"),
        callback_url=callback_url,
        primary_video_channel_id=opt_str(body, "primary_video_channel_id"),
    )
    return ok({"session_id": session.id, "status": session.status})


@routes.add("POST", "capture/session/{sid}/stop")
@api(client_ok=True)
async def client_stop(request: web.Request) -> web.Response:
    await json_body(request)
    core = core_of(request)
    session = core.session(request.match_info["sid"])
    check_reach(request, session)
    core.stop_session(session)
    return ok({"session_id": session.id, "status": session.status})


@routes.add("POST", "collection/{coll}/capture/session/{sid}/export")
@api()
async def export_session(request: web.Request) -> web.Response:
    collection_id(request)
    body = await json_body(request)
    core = core_of(request)
    session = core.session(request.match_info["sid"])
    result = core.export_session(session, opt_str(body, "video_channel_id"))
    connection_id = opt_str(body, "connection_id")
    if connection_id:
        core.hub.publish(
            connection_id,
            {"channel": "capture_session", "event": "capture_session.export", "data": result},
        )
    return ok(result)


@routes.add("GET", "collection/{coll}/websocket")
@api(client_ok=True)
async def websocket_url(request: web.Request) -> web.Response:
    collection_id(request)
    core = core_of(request)
    ticket = "wst-" + secrets.token_urlsafe(24)
    ttl = core.config.ws_ticket_ttl
    core.store.purge_expired(time.time())
    principal = request[PRINCIPAL]
    owner = owner_of(principal, request.headers.get("x-access-token", ""))
    core.store.ws_tickets[ticket] = WsTicket(ticket, principal, time.time() + ttl, owner)
    ws_base = core.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return ok({"websocket_url": f"{ws_base}/ws?ticket={ticket}", "expires_in": int(ttl)})


async def websocket_endpoint(request: web.Request) -> web.StreamResponse:
    core = core_of(request)
    ticket = core.store.ws_tickets.get(request.query.get("ticket", ""))
    if ticket is None or ticket.expires_at < time.time():
        raise ApiError(401, "missing, unknown or expired WebSocket ticket")
    return await core.hub.handle(request, ticket.principal, ticket.owner)
