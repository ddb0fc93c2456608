"""Asking the local VideoDB emulator to play the desktop client (embedded default only).

Copilot does not import the emulator: it speaks to its documented control API over HTTP,
with a freshly minted client token, exactly as a desktop client would be handed one.
"""

from __future__ import annotations

import requests
from django.conf import settings

from sessions_app import gateway
from sessions_app.capture import handoff
from sessions_app.models import CaptureSession

DEFAULT_SCRIPT = "product_planning"
TIMEOUT = 10


class SimulatorError(Exception):
    pass


def _control(path: str) -> str:
    return f"{settings.VIDEODB_BASE_URL}/_emulator/{path}"


def play(session: CaptureSession, *, script: str | None = None) -> str:
    """Start the scripted meeting for ``session``; returns the script's name."""
    if not settings.VIDEODB_USES_EMULATOR:
        raise SimulatorError("Simulated meetings only exist on the local emulator.")
    script = script or DEFAULT_SCRIPT
    if not script.replace("_", "").replace("-", "").isalnum() or len(script) > 64:
        raise SimulatorError("Unknown meeting script.")
    try:
        token = handoff.mint_client_token(session)
    except gateway.GatewayError as exc:
        raise SimulatorError(exc.message) from exc
    try:
        response = requests.post(
            _control(f"sessions/{session.videodb_id}/simulate"),
            json={
                "script": script,
                "speed": settings.SIMULATED_MEETING_SPEED,
                "client_token": token.token,
            },
            headers={"x-access-token": settings.VIDEODB_EMULATOR_API_KEY},
            timeout=TIMEOUT,
        )
    except requests.RequestException as exc:
        raise SimulatorError(f"The emulator could not be reached: {exc}") from exc
    if response.status_code >= 400:
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        raise SimulatorError(f"The emulator refused: {message[:300]}")
    return script
