"""The emulator's service logic: session lifecycle, event routing, exports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any

from .config import EmulatorConfig, WebhookPolicy
from .errors import ApiError
from .faults import FaultPlan, GenerationFaults
from .hub import Hub
from .scripts import ScriptError, ScriptLibrary
from .simulator import MeetingManager
from .state import (
    MEDIA_TYPES,
    CaptureSession,
    DesktopChannel,
    RTStream,
    Store,
    category_of,
    iso_now,
    new_id,
    now_ms,
)
from .uploads import Uploads
from .webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

TERMINAL = ("stopped", "exported", "failed")


class Emulator:
    """State plus behaviour of one emulated VideoDB; lives on one event loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.webhook_policy: WebhookPolicy = config.webhooks
        self.store = Store()
        self.hub = Hub(config.ws_queue_limit)
        self.webhooks = WebhookDispatcher(lambda: self.webhook_policy)
        self.faults = FaultPlan()
        self.generate_faults = GenerationFaults()
        self.uploads = Uploads()
        self.scripts = ScriptLibrary(config.scripts_dirs)
        self.base_url = config.public_base_url or f"http://{config.host}:{config.port}"
        # Where the simulator reaches the API itself (the public URL may be a proxy).
        self.local_url = f"http://{config.host}:{config.port}"
        self._tasks: set[asyncio.Task[Any]] = set()
        self.request_counts: Counter[str] = Counter()
        self.meetings = MeetingManager(self)
        if config.default_script is not None:
            try:  # a misspelt default is an error at start, not silence later
                self.scripts.get(config.default_script)
            except ScriptError as exc:
                raise ValueError(f"default script: {exc}") from None

    # -- background work -------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def shutdown(self) -> None:
        await self.meetings.stop_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.hub.drop_all()
        await self.webhooks.close()

    def configure_webhooks(self, **changes: Any) -> WebhookPolicy:
        policy = self.webhook_policy.updated(**changes)
        if "seed" in changes:
            self.webhooks.reseed(policy.seed)
        self.webhook_policy = policy
        return policy

    # -- lookups ---------------------------------------------------------------

    def session(self, session_id: str) -> CaptureSession:
        session = self.store.sessions.get(session_id)
        if session is None:
            raise ApiError(404, f"capture session '{session_id}' not found")
        return session

    def rtstream(self, rtstream_id: str) -> RTStream:
        rts = self.store.rtstreams.get(rtstream_id)
        if rts is None:
            raise ApiError(404, f"rtstream '{rtstream_id}' not found")
        return rts

    def session_dict(self, session: CaptureSession) -> dict[str, Any]:
        return session.to_dict(self.store, self.base_url)

    # -- lifecycle -------------------------------------------------------------

    def create_session(
        self,
        *,
        end_user_id: str,
        collection_id: str,
        callback_url: str | None,
        ws_connection_id: str | None,
        metadata: dict[str, Any] | None,
    ) -> CaptureSession:
        session = CaptureSession(
            id=new_id("cap"),
            end_user_id=end_user_id,
            collection_id=collection_id,
            callback_url=callback_url,
            ws_connection_id=ws_connection_id,
            metadata=metadata or {},
        )
        self.store.sessions[session.id] = session
        self._announce(session, {})
        return session

    def client_start(
        self,
        session: CaptureSession,
        channels: list[DesktopChannel],
        *,
        ws_connection_id: str | None,
        callback_url: str | None,
        primary_video_channel_id: str | None,
    ) -> None:
        if session.status != "created":
            raise ApiError(409, f"capture session is '{session.status}', expected 'created'")
        session.channels = channels
        if callback_url:
            session.callback_url = callback_url
        session.client_ws_connection_id = ws_connection_id
        videos = [c for c in channels if c.type == "video"]
        primary = primary_video_channel_id or next(
            (c.channel_id for c in videos if c.is_primary), videos[0].channel_id if videos else None
        )
        session.primary_video_channel_id = primary
        for ch in channels:
            ch.is_primary = ch.channel_id == primary
        # VideoDB makes one RTStream per channel once the client starts streaming.
        for ch in channels:
            category = category_of(ch.channel_id) or "screen"
            rts = RTStream(
                id=new_id("rts"),
                session_id=session.id,
                category=category,
                name=ch.channel_id,
                media_types=list(MEDIA_TYPES[category]),
                collection_id=session.collection_id,
            )
            self.store.rtstreams[rts.id] = rts
            session.rtstream_ids.append(rts.id)
        session.started_at_ms = now_ms()
        self.set_status(session, "starting")
        self.spawn(self._activate_later(session))
        # Whatever client started it, the "room" has something to say (unless a `simulate`
        # meeting is the client here, or the default is off).
        if self.config.default_script is not None and not self.meetings.running(session.id):
            self.meetings.attach(
                session.id,
                self.scripts.get(self.config.default_script),
                self.config.default_script_speed,
                origin="default_script",
            )

    async def _activate_later(self, session: CaptureSession) -> None:
        await asyncio.sleep(self.config.activation_delay)
        if session.status == "starting":
            streams = [self.store.rtstreams[r].webhook_dict() for r in session.rtstream_ids]
            self.set_status(session, "active", {"rtstreams": streams})

    def stop_session(self, session: CaptureSession) -> None:
        if session.status in ("stopping", *TERMINAL):
            return
        if session.status == "created":
            raise ApiError(409, "capture session was never started")
        self.set_status(session, "stopping")
        self.spawn(self._stop_later(session))

    async def _stop_later(self, session: CaptureSession) -> None:
        await asyncio.sleep(self.config.stop_delay)
        if session.status == "stopping":
            session.stopped_at_ms = now_ms()
            self._end_streams(session)
            self.set_status(session, "stopped")
            self._export_by_itself(session)

    def _export_by_itself(self, session: CaptureSession) -> None:
        """VideoDB exports a stopped session with a stored channel without being asked."""
        if self.config.export_delay is None or not any(c.store for c in session.channels):
            return
        session.export_status = "exporting"
        self.spawn(self._export_later(session, self.config.export_delay))

    async def _export_later(self, session: CaptureSession, delay: float) -> None:
        await asyncio.sleep(delay)
        # An explicit export() may have finished it meanwhile, or the session failed.
        if session.status == "stopped" and session.export is None:
            self.export_session(session, None)

    def _end_streams(self, session: CaptureSession) -> None:
        for rid in session.rtstream_ids:
            rts = self.store.rtstreams[rid]
            rts.status = "stopped"
            if rts.transcript.running:
                rts.transcript.running = False
                rts.transcript.stopped_at = now_ms()
            for index in rts.indexes.values():
                index.op.running = False

    def fail_session(self, session: CaptureSession, code: str, message: str) -> None:
        if session.status in ("exported", "failed"):
            raise ApiError(409, f"capture session is already '{session.status}'")
        self.meetings.cancel(session.id)
        if session.export_status == "exporting":
            session.export_status = "failed"
        session.error = {"code": code, "message": message}
        session.stopped_at_ms = session.stopped_at_ms or now_ms()
        self._end_streams(session)
        self.set_status(session, "failed", {"error": dict(session.error)})

    def export_session(
        self, session: CaptureSession, video_channel_id: str | None
    ) -> dict[str, Any]:
        if session.status not in ("stopped", "exported"):
            raise ApiError(
                409, f"capture session is '{session.status}'; export needs a stopped session"
            )
        if session.export is None:
            if not any(c.store for c in session.channels):
                raise ApiError(409, "nothing to export: no channel of the session has store: true")
            channel = video_channel_id or session.primary_video_channel_id
            if channel and channel not in {c.channel_id for c in session.channels}:
                raise ApiError(
                    400, f"'video_channel_id' {channel!r} is not a channel of the session"
                )
            video_id = new_id("m")
            duration = round(
                ((session.stopped_at_ms or now_ms()) - (session.started_at_ms or 0)) / 1000, 3
            )
            session.export = {
                "session_id": session.id,
                "video_channel_id": channel,
                "export_status": "exported",
                "video_id": video_id,
                "exported_video_id": video_id,
                "stream_url": f"{self.base_url}/_media/video/{video_id}/stream.m3u8",
                "player_url": f"{self.base_url}/_media/player/video/{video_id}",
                "duration": duration,
            }
            self.store.videos[video_id] = {"session_id": session.id, "duration": duration}
            session.export_status = "exported"
            session.exported_video_id = video_id
            self.set_status(
                session,
                "exported",
                {
                    "exported_video_id": video_id,
                    "stream_url": session.export["stream_url"],
                    "player_url": session.export["player_url"],
                    "duration": duration,
                },
            )
        return dict(session.export)

    def set_status(
        self, session: CaptureSession, status: str, data: dict[str, Any] | None = None
    ) -> None:
        session.status = status
        self._announce(session, data or {})

    def _announce(self, session: CaptureSession, data: dict[str, Any]) -> None:
        """Publish a lifecycle change: webhook (durable) and WebSocket (best effort)."""
        event = f"capture_session.{session.status}"
        event_id = new_id("whevt")
        envelope = {
            "version": "2",
            "event": event,
            "timestamp": iso_now(),
            "capture_session_id": session.id,
            "end_user_id": session.end_user_id,
            "status": session.status,
            "data": data,
        }
        if session.callback_url:
            body = dict(envelope)
            if self.webhook_policy.include_event_id:
                body["event_id"] = event_id
            self.webhooks.enqueue(
                kind="webhook",
                key=f"session:{session.id}",
                url=session.callback_url,
                body=body,
                event_id=event_id,
                event=event,
            )
        ws_message = {"channel": "capture_session", **envelope, "event_id": event_id}
        # A registered connection that has closed stands for its owner's newest live one
        # (the client reconnected); see Hub.route.
        registered = [session.ws_connection_id, session.client_ws_connection_id]
        for conn in dict.fromkeys(self.hub.route(c) for c in registered if c):
            self.hub.publish(conn, ws_message)

    # -- alert callbacks ---------------------------------------------------------

    def deliver_alert_callback(self, url: str, alert_id: str, body: dict[str, Any]) -> None:
        self.webhooks.enqueue(
            kind="alert", key=f"alert:{alert_id}", url=url, body=body, event_id=body.get("event_id")
        )

    def state_snapshot(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "sessions": [self.session_dict(s) for s in self.store.sessions.values()],
            "websocket": self.hub.snapshot(),
            "meetings": self.meetings.snapshot(),
            "faults": self.faults.to_dict(),
            "generate_faults": self.generate_faults.to_dict(),
            "webhook_policy": _policy_dict(self.webhook_policy),
            "deliveries": len(self.webhooks.history),
        }


def _policy_dict(policy: WebhookPolicy) -> dict[str, Any]:
    return asdict(policy)
