"""Local emulator of the VideoDB Capture API, for development and tests.

The real ``videodb`` SDK talks to it through ``videodb.connect(api_key=..., base_url=...)``.
"""

from .config import DEFAULT_API_KEY, DEFAULT_HOST, DEFAULT_PORT, EmulatorConfig, WebhookPolicy
from .server import EmulatorServer

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EmulatorConfig",
    "EmulatorServer",
    "WebhookPolicy",
]
