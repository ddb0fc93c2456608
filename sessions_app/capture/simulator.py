"""Asking the local VideoDB emulator to play the desktop client (embedded default only).

Copilot does not import the emulator: it speaks to its documented control API over HTTP,
with a freshly minted client token, exactly as a desktop client would be handed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from django.conf import settings
from django.core.cache import cache

from sessions_app import gateway
from sessions_app.capture import handoff
from sessions_app.models import CaptureSession

DEFAULT_SCRIPT = "product_planning"
TIMEOUT = 10

SCRIPTS_CACHE_KEY = "simulator:scripts"
SCRIPTS_TIMEOUT = 2


class SimulatorError(Exception):
    pass


@dataclass(frozen=True)
class Script:
    """A meeting the emulator can play: its key, what people read, how long it lasts."""

    name: str
    title: str
    minutes: float  # at SIMULATED_MEETING_SPEED


# What the form offers when the emulator cannot be asked (it is still starting, say).
FALLBACK_SCRIPTS = (
    Script("product_planning", "Q3 product planning", 0),
    Script("sales_call", "Enterprise sales call: pricing", 0),
    Script("incident_review", "Checkout outage post-incident review", 0),
)


def _control(path: str) -> str:
    return f"{settings.VIDEODB_BASE_URL}/_emulator/{path}"


def scripts() -> tuple[Script, ...]:
    """The meetings the emulator can play, as it describes them (cached for a minute: the
    page asks on every load, the library changes only when the emulator restarts)."""
    cached = cache.get(SCRIPTS_CACHE_KEY)
    if cached is not None:
        return cached
    try:
        response = requests.get(
            _control("scripts"),
            headers={"x-access-token": settings.VIDEODB_EMULATOR_API_KEY},
            timeout=SCRIPTS_TIMEOUT,  # a page waits on it: short, the fallback serves
        )
        response.raise_for_status()
        body = response.json()
        listed = (body.get("data") or {})["scripts"]
        speed = settings.SIMULATED_MEETING_SPEED
        found = tuple(
            Script(
                str(item["name"]),
                str(item.get("title") or item["name"]),
                round(float(item.get("duration") or 0) / 60 / speed, 1),
            )
            for item in listed
            if isinstance(item, dict) and "name" in item and "error" not in item
        )
    except (requests.RequestException, ValueError, KeyError, TypeError):
        # Kept briefly too, so that an unreachable emulator is not waited on by every load.
        cache.set(SCRIPTS_CACHE_KEY, FALLBACK_SCRIPTS, 10)
        return FALLBACK_SCRIPTS
    found = found or FALLBACK_SCRIPTS
    cache.set(SCRIPTS_CACHE_KEY, found, 60)
    return found


def title_of(name: str) -> str:
    """What people read for the script ``name`` (its key when the emulator does not know it)."""
    return next((s.title for s in scripts() if s.name == name), name.replace("_", " "))


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
