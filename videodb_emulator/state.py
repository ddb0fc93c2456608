"""In-memory model of collections, capture sessions, RTStreams and their AI operations.

Everything here is touched only from the emulator's event loop, so no locking.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_COLLECTION = "default"

# Desktop channel prefix -> RTStream category (the `channel_id` VideoDB's apps filter on).
CATEGORY_BY_PREFIX = {
    "mic": "mic",
    "display": "screen",
    "screen": "screen",
    "system_audio": "system_audio",
}
MEDIA_TYPES = {"mic": ["audio"], "system_audio": ["audio"], "screen": ["video"]}

SESSION_STATUSES = ("created", "starting", "active", "stopping", "stopped", "exported", "failed")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_now() -> str:
    # Whole seconds with a literal Z, exactly as the documented envelope shows.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_from_ms(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def category_of(channel_name: str) -> str | None:
    return CATEGORY_BY_PREFIX.get(channel_name.split(":", 1)[0].lower())


@dataclass
class DesktopChannel:
    channel_id: str
    name: str
    type: str
    store: bool = True
    is_primary: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel_id,
            "name": self.name,
            "type": self.type,
            "store": self.store,
            "is_primary": self.is_primary,
        }


@dataclass
class Operation:
    """A start/stop-able AI operation routed to one WebSocket connection."""

    running: bool = False
    ws_connection_id: str | None = None
    engine: str | None = None
    started_at: int | None = None
    stopped_at: int | None = None


@dataclass
class Alert:
    id: str
    rtstream_id: str
    index_id: str
    event_id: str
    callback_url: str
    ws_connection_id: str | None
    status: str = "enabled"
    created_at: str = field(default_factory=iso_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.id,
            "rtstream_id": self.rtstream_id,
            "rtstream_index_id": self.index_id,
            "event_id": self.event_id,
            "callback_url": self.callback_url,
            "ws_connection_id": self.ws_connection_id,
            "status": self.status,
            "created_at": self.created_at,
        }


@dataclass
class SceneIndex:
    id: str
    rtstream_id: str
    extraction_type: str  # "transcript" -> audio index, "time"/"shot" -> visual index
    extraction_config: dict[str, Any]
    prompt: str | None
    name: str | None
    model_name: str | None
    op: Operation
    records: list[dict[str, Any]] = field(default_factory=list)
    alerts: dict[str, Alert] = field(default_factory=dict)
    created_at: str = field(default_factory=iso_now)

    @property
    def kind(self) -> str:
        return "audio" if self.extraction_type == "transcript" else "visual"

    @property
    def status(self) -> str:
        return "connected" if self.op.running else "stopped"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rtstream_index_id": self.id,
            "rtstream_id": self.rtstream_id,
            "extraction_type": self.extraction_type,
            "extraction_config": self.extraction_config,
            "prompt": self.prompt,
            "name": self.name,
            "model_name": self.model_name,
            "status": self.status,
            "ws_connection_id": self.op.ws_connection_id,
            "created_at": self.created_at,
        }


@dataclass
class RTStream:
    id: str
    session_id: str
    category: str
    name: str
    media_types: list[str]
    collection_id: str = DEFAULT_COLLECTION
    status: str = "connected"
    created_at: str = field(default_factory=iso_now)
    transcript: Operation = field(default_factory=Operation)
    # Final transcript segments stored while transcription runs (what get_transcript pages).
    segments: list[dict[str, Any]] = field(default_factory=list)
    indexes: dict[str, SceneIndex] = field(default_factory=dict)
    # What the "desktop client" recorded, whether or not any AI operation ran.
    media_log: list[dict[str, Any]] = field(default_factory=list)
    # The latest recording (`rts.start()` begins a new one; None: since the client started).
    recording_started_ms: int | None = None
    stopped_at_ms: int | None = None
    # `rts.export()` of the latest recording (idempotent until the stream records again).
    export: dict[str, Any] | None = None

    def to_dict(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "rtstream_id": self.id,
            "name": self.name,
            "channel_id": self.category,
            "media_types": list(self.media_types),
            "collection_id": self.collection_id,
            "capture_session_id": self.session_id,
            "created_at": self.created_at,
            "sample_rate": 30,
            "status": self.status,
            "stream_url": f"{base_url}/_media/rtstream/{self.id}/live.m3u8",
            "player_url": f"{base_url}/_media/player/rtstream/{self.id}",
        }

    def webhook_dict(self) -> dict[str, Any]:
        return {"rtstream_id": self.id, "name": self.name, "media_types": list(self.media_types)}


@dataclass
class CaptureSession:
    id: str
    end_user_id: str
    collection_id: str = DEFAULT_COLLECTION
    callback_url: str | None = None
    ws_connection_id: str | None = None
    client_ws_connection_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str = "created"
    channels: list[DesktopChannel] = field(default_factory=list)
    primary_video_channel_id: str | None = None
    rtstream_ids: list[str] = field(default_factory=list)
    export_status: str | None = None
    exported_video_id: str | None = None
    export: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: str = field(default_factory=iso_now)
    started_at_ms: int | None = None
    stopped_at_ms: int | None = None

    def to_dict(self, store: Store, base_url: str) -> dict[str, Any]:
        return {
            # Only `session_id`: create_capture_session() in SDK 0.5.1 passes a
            # leftover `id` twice and raises TypeError.
            "session_id": self.id,
            "collection_id": self.collection_id,
            "end_user_id": self.end_user_id,
            "client_id": self.id,
            "status": self.status,
            "callback_url": self.callback_url,
            "ws_connection_id": self.ws_connection_id,
            "metadata": self.metadata,
            "channels": [c.to_dict() for c in self.channels],
            "primary_video_channel_id": self.primary_video_channel_id,
            "export_status": self.export_status,
            "exported_video_id": self.exported_video_id,
            "rtstreams": [store.rtstreams[r].to_dict(base_url) for r in self.rtstream_ids],
            "error": self.error,
            "created_at": self.created_at,
        }


@dataclass
class RTEvent:
    id: str
    event_prompt: str
    label: str
    created_at: str = field(default_factory=iso_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.id,
            "event_prompt": self.event_prompt,
            "label": self.label,
            "created_at": self.created_at,
        }


@dataclass
class ClientToken:
    token: str
    expires_at: float
    # The end user it was minted for; it reaches only that end user's capture sessions.
    # None: minted without one (the SDK's own call sends none), so it is not narrowed.
    end_user_id: str | None = None


@dataclass
class WsTicket:
    """Credential embedded in a websocket_url (the SDK sends no headers on connect)."""

    ticket: str
    principal: str  # "api_key" or "client_token"
    expires_at: float
    owner: str = ""  # which key or token minted it (hub.owner_of)


@dataclass
class Store:
    sessions: dict[str, CaptureSession] = field(default_factory=dict)
    rtstreams: dict[str, RTStream] = field(default_factory=dict)
    events: dict[str, RTEvent] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    client_tokens: dict[str, ClientToken] = field(default_factory=dict)
    ws_tickets: dict[str, WsTicket] = field(default_factory=dict)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Audio assets: what `rts.export()` makes of an audio-only stream.
    audios: dict[str, dict[str, Any]] = field(default_factory=dict)

    def purge_expired(self, now: float) -> None:
        for key in [k for k, t in self.client_tokens.items() if t.expires_at < now - 3600]:
            del self.client_tokens[key]
        for key in [k for k, t in self.ws_tickets.items() if t.expires_at < now]:
            del self.ws_tickets[key]
