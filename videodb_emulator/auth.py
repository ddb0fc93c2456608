"""Who is calling: an API key, a desktop client token, or nobody."""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import ApiError
from .state import ClientToken

if TYPE_CHECKING:
    from .core import Emulator
    from .state import CaptureSession

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_KEY = "api_key"
CLIENT_TOKEN = "client_token"  # noqa: S105 - a principal name, not a secret
PRINCIPAL = web.RequestKey("principal", str)
CLIENT = web.RequestKey("client_token", object)  # the ClientToken, for client-token calls
CORE = web.AppKey("emulator_core", object)


def is_api_key(core: Emulator, token: str) -> bool:
    return any(hmac.compare_digest(token, key) for key in core.config.api_keys)


def resolve_client(core: Emulator, token: str | None) -> ClientToken | None:
    """The client token making the call; None for the API key. Raises 401 for anything else."""
    if not token:
        raise ApiError(401, "missing x-access-token header (API key or client token)")
    if is_api_key(core, token):
        return None
    client = core.store.client_tokens.get(token)
    if client is None:
        raise ApiError(401, "invalid API key or token")
    if client.expires_at < time.time():
        raise ApiError(401, "client token has expired")
    return client


def resolve_principal(core: Emulator, token: str | None) -> str:
    return API_KEY if resolve_client(core, token) is None else CLIENT_TOKEN


def client_of(request: web.Request) -> ClientToken | None:
    client = request.get(CLIENT)
    return client if isinstance(client, ClientToken) else None


def check_reach(request: web.Request, session: CaptureSession) -> None:
    """A client token minted for an end user acts only on that end user's sessions. Any
    other session answers as if it did not exist (404), so a token learns nothing about
    sessions it cannot touch."""
    client = client_of(request)
    if client is None or client.end_user_id is None:
        return
    if not hmac.compare_digest(client.end_user_id, session.end_user_id or ""):
        raise ApiError(404, f"capture session '{session.id}' not found")


def for_caller(request: web.Request, session: dict[str, object]) -> dict[str, object]:
    """A session as the caller may see it: a client token never gets ``callback_url``,
    whose URL is the integrator's webhook and may carry its secret."""
    if client_of(request) is None:
        return session
    return {k: v for k, v in session.items() if k != "callback_url"}


def api(*, client_ok: bool = False) -> Callable[[Handler], Handler]:
    """Authenticate a REST handler.

    A client token may call only what the desktop client needs (start, get and
    stop its capture session, and open the WebSocket); anything else is 403.
    """

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            core: Emulator = request.app[CORE]  # type: ignore[assignment]
            client = resolve_client(core, request.headers.get("x-access-token"))
            principal = API_KEY if client is None else CLIENT_TOKEN
            if principal == CLIENT_TOKEN and not client_ok:
                raise ApiError(
                    403,
                    "a client token may only start, read or stop a capture session and open "
                    "the WebSocket; use the API key for this call",
                )
            request[PRINCIPAL] = principal
            if client is not None:
                request[CLIENT] = client
            return await handler(request)

        return wrapper

    return wrap


def control_key_ok(core: Emulator, request: web.Request) -> bool:
    token = request.headers.get("x-access-token") or ""
    auth = request.headers.get("Authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return bool(token) and is_api_key(core, token)
