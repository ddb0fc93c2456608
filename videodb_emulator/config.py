"""Configuration of one emulator instance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

DEFAULT_API_KEY = "emulator-dev-key"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_SCRIPT = "product_planning"
API_KEYS_ENV = "VIDEODB_EMULATOR_API_KEYS"


def api_keys_from_env() -> tuple[str, ...]:
    raw = os.environ.get(API_KEYS_ENV, "")
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    return keys or (DEFAULT_API_KEY,)


@dataclass(frozen=True)
class WebhookPolicy:
    """How lifecycle webhooks and alert callbacks are delivered.

    Mutable at runtime through the control API, so it is kept apart from the
    immutable server config and swapped as a whole (never edited in place).
    """

    # The docs promise at-least-once delivery and VideoDB's sample receivers
    # block for seconds before answering, so wait generously by default.
    timeout: float = 30.0
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    duplicate_rate: float = 0.0
    # Deliveries of one session are released in batches of this size, in a
    # seeded random order; 0 or 1 keeps the natural order.
    shuffle_window: int = 0
    # How long a session's worker waits for a batch to fill before shuffling it.
    shuffle_linger: float = 0.15
    seed: int | None = None
    include_event_id: bool = True

    def updated(self, **changes: Any) -> WebhookPolicy:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown webhook setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = DEFAULT_HOST
    # 0 binds an ephemeral port (what tests want).
    port: int = DEFAULT_PORT
    api_keys: tuple[str, ...] = field(default_factory=api_keys_from_env)
    # Base URL put into websocket/stream/player URLs; derived from the bound
    # socket when unset (set it when the emulator sits behind a proxy).
    public_base_url: str | None = None
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    # Also publish visual results on the legacy "scene_index" channel.
    send_scene_index: bool = False
    # Delays of the service-side transitions starting->active, stopping->stopped.
    activation_delay: float = 0.05
    stop_delay: float = 0.05
    ws_ticket_ttl: float = 3600.0
    # Events queued for one slow WebSocket reader before it is disconnected.
    ws_queue_limit: int = 20000
    scripts_dirs: tuple[str, ...] = ()
    # Seconds from `stopped` to `exported` for a session with a stored channel (VideoDB
    # exports by itself; its sample apps never call export()). None: only when asked.
    export_delay: float | None = 2.0
    # The meeting played for a session any desktop client starts (not through `simulate`):
    # a script name, or None for silence. The testing helpers default to None.
    default_script: str | None = DEFAULT_SCRIPT
    default_script_speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.api_keys:
            raise ValueError("at least one API key is required")
        if isinstance(self.api_keys, str):
            object.__setattr__(self, "api_keys", (self.api_keys,))
        if self.default_script is not None and self.default_script.strip().lower() in ("", "none"):
            object.__setattr__(self, "default_script", None)
        if self.export_delay is not None and self.export_delay < 0:
            raise ValueError("export_delay must be >= 0 (or None for no export by itself)")
        if self.default_script_speed <= 0:
            raise ValueError("default_script_speed must be > 0")


def make_config(**overrides: Any) -> EmulatorConfig:
    """Build a config, accepting webhook settings flat (``webhook_timeout=...``)."""
    hook_changes = {}
    for key in list(overrides):
        if key.startswith("webhook_"):
            hook_changes[key.removeprefix("webhook_")] = overrides.pop(key)
    for key in ("duplicate_rate", "shuffle_window", "shuffle_linger", "seed", "include_event_id"):
        if key in overrides:
            hook_changes[key] = overrides.pop(key)
    if "api_keys" in overrides and isinstance(overrides["api_keys"], str):
        overrides["api_keys"] = (overrides["api_keys"],)
    elif "api_keys" in overrides:
        overrides["api_keys"] = tuple(overrides["api_keys"])
    if "scripts_dirs" in overrides:
        overrides["scripts_dirs"] = tuple(str(p) for p in overrides["scripts_dirs"])
    policy = overrides.pop("webhooks", WebhookPolicy())
    config = EmulatorConfig(**overrides, webhooks=policy.updated(**hook_changes))
    return config
