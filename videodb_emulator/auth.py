"""Who is calling: an API key, a desktop client token, or nobody."""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import ApiError

if TYPE_CHECKING:
    from .core import Emulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_KEY = "api_key"
CLIENT_TOKEN = "client_token"  # noqa: S105 - a principal name, not a secret
PRINCIPAL = web.RequestKey("principal", str)
CORE = web.AppKey("emulator_core", object)


def is_api_key(core: Emulator, token: str) -> bool:
    return any(hmac.compare_digest(token, key) for key in core.config.api_keys)


def resolve_principal(core: Emulator, token: str | None) -> str:
    if not token:
        raise ApiError(401, "missing x-access-token header (API key or client token)")
    if is_api_key(core, token):
        return API_KEY
    client = core.store.client_tokens.get(token)
    if client is None:
        raise ApiError(401, "invalid API key or token")
    if client.expires_at < time.time():
        raise ApiError(401, "client token has expired")
    return CLIENT_TOKEN


def api(*, client_ok: bool = False) -> Callable[[Handler], Handler]:
    """Authenticate a REST handler.

    A client token may call only what the desktop client needs (start, get and
    stop its capture session, and open the WebSocket); anything else is 403.
    """

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            core: Emulator = request.app[CORE]  # type: ignore[assignment]
            principal = resolve_principal(core, request.headers.get("x-access-token"))
            if principal == CLIENT_TOKEN and not client_ok:
                raise ApiError(
                    403,
                    "a client token may only start, read or stop a capture session and open "
                    "the WebSocket; use the API key for this call",
                )
            request[PRINCIPAL] = principal
            return await handler(request)

        return wrapper

    return wrap


def control_key_ok(core: Emulator, request: web.Request) -> bool:
    token = request.headers.get("x-access-token") or ""
    auth = request.headers.get("Authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return bool(token) and is_api_key(core, token)
