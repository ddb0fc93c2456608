"""Meeting simulator: plays the desktop client and replays a script's AI output.

The emulator is not a model. Transcripts, insights, scene descriptions and
alerts are taken from the script and released on the schedule a real
pipeline would follow (word-by-word interims, batch windows, alert moments).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from .scripts import AlertMoment, Script, Utterance
from .state import ClientToken, RTStream, SceneIndex, iso_from_ms, new_id

if TYPE_CHECKING:
    from .core import Emulator

log = logging.getLogger(__name__)

DESKTOP_CHANNELS = [
    {"channel_id": "mic:default", "name": "Default microphone", "type": "audio", "store": True},
    {"channel_id": "system_audio:default", "name": "System audio", "type": "audio", "store": True},
    {
        "channel_id": "display:1",
        "name": "Display 1",
        "type": "video",
        "store": True,
        "is_primary": True,
    },
]
DEFAULT_VISUAL_WINDOW = 10.0
DEFAULT_AUDIO_BATCH = {"segmenter": "time", "segmentation_value": 30}
MAX_SLEEP = 0.1
FALLBACK_PREFIX = "[emulator: no scripted insight for this window]"

# Heap priorities at equal script time: media first, then AI output, the end last.
_P_MEDIA, _P_OUTPUT, _P_END = 0, 1, 9


def visual_window(index: SceneIndex) -> float:
    value = (index.extraction_config or {}).get("time")
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_VISUAL_WINDOW


def audio_batch(index: SceneIndex) -> tuple[str, float]:
    cfg = index.extraction_config or {}
    segmenter = cfg.get("segmenter") or DEFAULT_AUDIO_BATCH["segmenter"]
    value = cfg.get("segmentation_value") or DEFAULT_AUDIO_BATCH["segmentation_value"]
    return str(segmenter), float(value)


def alert_matches(event_label: str, event_prompt: str, moment: AlertMoment) -> bool:
    """The documented matching rule between an alert's event and a scripted moment."""
    if event_label.strip().lower() == moment.label.lower():
        return True
    prompt = event_prompt.lower()
    return any(keyword in prompt for keyword in moment.keywords)


class Meeting:
    """One scripted meeting. Either it plays the desktop client too (starts the session
    over HTTP, stops it at the end), or it is ``attached`` to a session a client started:
    then it only supplies what is said and shown, and the client decides when to stop."""

    def __init__(
        self,
        core: Emulator,
        session_id: str,
        script: Script,
        speed: float,
        client_token: str | None,
        *,
        attached: bool = False,
        origin: str = "simulate",
    ) -> None:
        self.core = core
        self.session_id = session_id
        self.script = script
        self.speed = speed
        self.client_token = client_token
        self.attached = attached
        self.origin = origin  # "simulate" or "default_script"
        self.state = "pending"
        self.error: str | None = None
        self.events_emitted = 0
        self.streams: dict[str, RTStream] = {}
        self._heap: list[tuple[float, int, int, str, Any]] = []
        self._seq = 0
        self._anchor_t = 0.0
        self._anchor_mono = 0.0
        self._anchor_wall = 0.0
        self._utt_start_ms: dict[int, int] = {}
        self._windows: dict[str, dict[str, float]] = {}
        self._counters: dict[str, dict[str, Any]] = {}
        self.task: asyncio.Task[None] | None = None

    # -- clock -----------------------------------------------------------------

    def script_time(self) -> float:
        loop = asyncio.get_running_loop()
        return self._anchor_t + (loop.time() - self._anchor_mono) * self.speed

    def wall_ms(self, t: float) -> int:
        """Epoch ms at which script time ``t`` plays (or played) at the current speed."""
        return int((self._anchor_wall + (t - self._anchor_t) / self.speed) * 1000)

    def set_speed(self, speed: float) -> None:
        if self.state == "playing":
            loop = asyncio.get_running_loop()
            now_t = self.script_time()
            self._anchor_t = now_t
            self._anchor_mono = loop.time()
            self._anchor_wall = time.time()
        self.speed = speed

    def _push(self, t: float, prio: int, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, prio, self._seq, kind, payload))

    # -- desktop client part ---------------------------------------------------

    async def _client_call(
        self, http: aiohttp.ClientSession, path: str, body: dict[str, Any]
    ) -> None:
        url = f"{self.core.local_url}/{path}"
        headers = {"x-access-token": self.client_token}
        last = ""
        for attempt in range(6):
            try:
                async with http.post(url, json=body, headers=headers) as resp:
                    if resp.status < 300:
                        return
                    last = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                    if resp.status < 500:
                        break
            except aiohttp.ClientError as exc:
                last = str(exc)
            await asyncio.sleep(0.05 * 2**attempt)
        raise RuntimeError(f"desktop client call {path} failed: {last}")

    async def run(self, http: aiohttp.ClientSession) -> None:
        try:
            if not self.attached:
                await self._client_call(
                    http,
                    "capture/session/start",
                    {
                        "session_id": self.session_id,
                        "channels": DESKTOP_CHANNELS,
                        "primary_video_channel_id": "display:1",
                    },
                )
            session = self.core.store.sessions[self.session_id]
            deadline = time.monotonic() + 30
            while session.status == "starting" and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if session.status != "active":
                raise RuntimeError(f"session did not become active (status {session.status})")
            for rid in session.rtstream_ids:
                rts = self.core.store.rtstreams[rid]
                self.streams.setdefault(rts.category, rts)
            self._play_setup()
            self.state = "playing"
            await self._play(session)
            if session.status == "active" and not self.attached:
                await self._client_call(http, f"capture/session/{self.session_id}/stop", {})
            self.state = "finished"
        except asyncio.CancelledError:
            self.state = "cancelled"
            raise
        except Exception as exc:
            self.state = "failed"
            self.error = str(exc)
            log.warning("meeting for %s failed: %s", self.session_id, exc)

    # -- playback --------------------------------------------------------------

    def _play_setup(self) -> None:
        loop = asyncio.get_running_loop()
        self._anchor_t = 0.0
        self._anchor_mono = loop.time()
        self._anchor_wall = time.time()
        for i, utt in enumerate(self.script.utterances):
            self._push(utt.start, _P_MEDIA, "utt_start", i)
            words = len(utt.words)
            for w in range(1, words):
                t = utt.start + (utt.end - utt.start) * w / words
                self._push(t, _P_OUTPUT, "interim", (i, w))
            self._push(utt.end, _P_OUTPUT, "final", i)
        for scene in self.script.scenes:
            self._push(scene.start, _P_MEDIA, "scene", scene)
        for moment in self.script.alerts:
            self._push(moment.at, _P_OUTPUT, "alert", moment)
        self._push(self.script.duration, _P_END, "end", None)

    async def _play(self, session: Any) -> None:
        loop = asyncio.get_running_loop()
        while self._heap:
            if session.status != "active":
                return
            self._schedule_windows()
            t = self._heap[0][0]
            delay = self._anchor_mono + (t - self._anchor_t) / self.speed - loop.time()
            if delay > 0:
                await asyncio.sleep(min(delay, MAX_SLEEP))
                continue
            _, _, _, kind, payload = heapq.heappop(self._heap)
            if kind == "end":
                self._flush_counters()
                return
            getattr(self, f"_on_{kind}")(t, payload)

    def _schedule_windows(self) -> None:
        """Pick up time-batched indexes started (or restarted) since the last look."""
        for rts in self.streams.values():
            for index in rts.indexes.values():
                if not index.op.running or index.id in self._windows:
                    continue
                if index.kind == "visual":
                    width = visual_window(index)
                else:
                    segmenter, value = audio_batch(index)
                    if segmenter != "time":
                        continue
                    width = value
                now_t = max(0.0, self.script_time())
                if now_t >= self.script.duration:
                    continue
                boundary = (int(now_t // width) + 1) * width
                start = boundary - width
                self._windows[index.id] = {"from": start, "width": width}
                self._push(
                    min(boundary, self.script.duration), _P_OUTPUT, "window", (rts.id, index.id)
                )

    # -- handlers (named _on_<kind>) -----------------------------------------

    def _on_utt_start(self, t: float, i: int) -> None:
        self._utt_start_ms[i] = self.wall_ms(t)

    def _on_interim(self, t: float, payload: tuple[int, int]) -> None:
        i, w = payload
        utt = self.script.utterances[i]
        rts = self.streams.get(utt.channel)
        if rts is None or not rts.transcript.running:
            return
        text = " ".join(utt.words[:w])
        data = {
            "text": text,
            "is_final": False,
            "start": self._utt_start_ms[i],
            "end": self.wall_ms(t),
        }
        self._publish(rts.transcript.ws_connection_id, "transcript", rts, data)

    def _on_final(self, t: float, i: int) -> None:
        utt = self.script.utterances[i]
        rts = self.streams.get(utt.channel)
        if rts is None:
            return
        start_ms, end_ms = self._utt_start_ms[i], self.wall_ms(t)
        rts.media_log.append(
            {
                "kind": "speech",
                "speaker": utt.speaker,
                "text": utt.text,
                "start": start_ms,
                "end": end_ms,
            }
        )
        if rts.transcript.running:
            segment = {"text": utt.text, "is_final": True, "start": start_ms, "end": end_ms}
            rts.segments.append(segment)
            self._publish(rts.transcript.ws_connection_id, "transcript", rts, dict(segment))
        self._count_words(rts, utt, i, end_ms)

    def _on_scene(self, t: float, scene: Any) -> None:
        rts = self.streams.get("screen")
        if rts is not None:
            rts.media_log.append({"kind": "screen", "text": scene.text, "start": self.wall_ms(t)})

    def _on_window(self, t: float, payload: tuple[str, str]) -> None:
        rts_id, index_id = payload
        rts = self.core.store.rtstreams.get(rts_id)
        index = rts.indexes.get(index_id) if rts else None
        window = self._windows.get(index_id)
        if rts is None or index is None or window is None:
            return
        if not index.op.running:
            # Forget it so that a restart schedules fresh windows.
            del self._windows[index_id]
            return
        start_t = window["from"]
        window["from"] = t
        if t < self.script.duration:
            self._push(min(t + window["width"], self.script.duration), _P_OUTPUT, "window", payload)
        if index.kind == "visual":
            text = self._scene_text(start_t, t)
        else:
            text = self._speech_insight(rts, start_t, t)
        if text:
            self._emit_index(rts, index, text, self.wall_ms(start_t), self.wall_ms(t))

    def _on_alert(self, t: float, moment: AlertMoment) -> None:
        store = self.core.store
        streams = [self.streams[moment.channel]] if moment.channel in self.streams else []
        if moment.channel is None:
            streams = list(self.streams.values())
        end_ms = self.wall_ms(t)
        start_ms = self.wall_ms(moment.start)
        for rts in streams:
            for index in rts.indexes.values():
                if not index.op.running:
                    continue
                for alert in index.alerts.values():
                    event = store.events.get(alert.event_id)
                    if alert.status != "enabled" or event is None:
                        continue
                    if not alert_matches(event.label, event.event_prompt, moment):
                        continue
                    self._fire_alert(rts, index, alert, event, moment, start_ms, end_ms)

    # -- output ----------------------------------------------------------------

    def _publish(
        self, conn_id: str | None, channel: str, rts: RTStream, data: dict[str, Any], **extra: Any
    ) -> None:
        self.events_emitted += 1
        if not conn_id:
            return
        self.core.hub.publish(
            conn_id,
            {
                "channel": channel,
                "rtstream_id": rts.id,
                "rtstream_name": rts.name,
                "capture_session_id": self.session_id,
                **extra,
                "data": data,
            },
        )

    def _emit_index(
        self, rts: RTStream, index: SceneIndex, text: str, start: int, end: int
    ) -> None:
        record = {"text": text, "start": start, "end": end}
        index.records.append(record)
        extra = {"rtstream_index_id": index.id, "index_name": index.name}
        if index.kind == "audio":
            self._publish(index.op.ws_connection_id, "audio_index", rts, dict(record), **extra)
            return
        self._publish(index.op.ws_connection_id, "visual_index", rts, dict(record), **extra)
        if self.core.config.send_scene_index:
            self._publish(index.op.ws_connection_id, "scene_index", rts, dict(record), **extra)

    def _fire_alert(
        self,
        rts: RTStream,
        index: SceneIndex,
        alert: Any,
        event: Any,
        moment: AlertMoment,
        start_ms: int,
        end_ms: int,
    ) -> None:
        data = {
            "label": event.label,
            "event_label": event.label,
            "triggered": True,
            "confidence": moment.confidence,
            "text": moment.text,
            "explanation": moment.explanation,
            "start": start_ms,
            "end": end_ms,
            "timestamp": end_ms,
        }
        self._publish(
            alert.ws_connection_id,
            "alert",
            rts,
            data,
            alert_id=alert.id,
            event_id=event.id,
            rtstream_index_id=index.id,
        )
        clip = f"{self.core.base_url}/_media"
        self.core.deliver_alert_callback(
            alert.callback_url,
            alert.id,
            {
                "event_id": event.id,
                "alert_id": alert.id,
                "rtstream_id": rts.id,
                "label": event.label,
                "confidence": moment.confidence,
                "explanation": moment.explanation,
                "timestamp": iso_from_ms(end_ms),
                "start_time": start_ms / 1000,
                "end_time": end_ms / 1000,
                "stream_url": f"{clip}/rtstream/{rts.id}/{start_ms}-{end_ms}/stream.m3u8",
                "player_url": f"{clip}/player/rtstream/{rts.id}?start={start_ms}&end={end_ms}",
            },
        )

    # -- content selection ---------------------------------------------------

    def _scene_text(self, a: float, b: float) -> str | None:
        best, best_overlap = None, 0.0
        for scene in self.script.scenes:
            overlap = min(b, scene.end) - max(a, scene.start)
            if overlap > best_overlap:
                best, best_overlap = scene.text, overlap
        return best

    def _speech_insight(self, rts: RTStream, a: float, b: float) -> str | None:
        spoken = [
            u
            for u in self.script.utterances
            if u.channel == rts.category and u.end > a and u.start < b
        ]
        if not spoken:
            return None
        best, best_overlap = None, 0.0
        for insight in self.script.insights:
            if insight.channel not in (None, rts.category):
                continue
            overlap = min(b, insight.end) - max(a, insight.start)
            if overlap > best_overlap:
                best, best_overlap = insight.text, overlap
        if best:
            return best
        words = " ".join(spoken[0].text.split()[:16])
        return f"{FALLBACK_PREFIX} {spoken[0].speaker}: {words}"

    def _count_words(self, rts: RTStream, utt: Utterance, i: int, end_ms: int) -> None:
        for index in rts.indexes.values():
            if index.kind != "audio" or not index.op.running:
                continue
            segmenter, value = audio_batch(index)
            if segmenter not in ("word", "sentence"):
                continue
            counter = self._counters.setdefault(
                index.id, {"words": 0, "sentences": 0, "from_t": utt.start, "from_ms": None}
            )
            if counter["from_ms"] is None:
                counter["from_t"], counter["from_ms"] = utt.start, self._utt_start_ms[i]
            counter["words"] += len(utt.words)
            counter["sentences"] += utt.sentences
            reached = counter["words"] if segmenter == "word" else counter["sentences"]
            if reached >= value:
                self._emit_counter(rts, index, counter, utt.end, end_ms)

    def _emit_counter(
        self, rts: RTStream, index: SceneIndex, counter: dict[str, Any], end_t: float, end_ms: int
    ) -> None:
        text = self._speech_insight(rts, counter["from_t"], end_t)
        if text:
            self._emit_index(rts, index, text, counter["from_ms"], end_ms)
        counter.update(words=0, sentences=0, from_ms=None)

    def _flush_counters(self) -> None:
        end_ms = self.wall_ms(self.script.duration)
        for rts in self.streams.values():
            for index in rts.indexes.values():
                counter = self._counters.get(index.id)
                if counter and counter["words"] and index.op.running:
                    self._emit_counter(rts, index, counter, self.script.duration, end_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "script": self.script.name,
            "mode": "attached" if self.attached else "client",
            "origin": self.origin,
            "speed": self.speed,
            "state": self.state,
            "error": self.error,
            "events_emitted": self.events_emitted,
            "script_time": round(self.script_time(), 3) if self.state == "playing" else None,
            "duration": self.script.duration,
        }


class MeetingManager:
    def __init__(self, core: Emulator) -> None:
        self.core = core
        self.meetings: dict[str, Meeting] = {}
        self._http: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._http

    def running(self, session_id: str) -> Meeting | None:
        meeting = self.meetings.get(session_id)
        return meeting if meeting is not None and meeting.state in ("pending", "playing") else None

    def _make_room(self, session_id: str) -> None:
        """A meeting the emulator chose by itself gives way to one asked for; any other
        running meeting is a conflict."""
        existing = self.running(session_id)
        if existing is None:
            return
        if existing.origin != "default_script":
            raise ValueError(f"a meeting is already running for session '{session_id}'")
        self.cancel(session_id)

    def start(
        self, session_id: str, script: Script, speed: float, client_token: str | None = None
    ) -> Meeting:
        """Play the desktop client too, for a session nobody has started yet."""
        self._make_room(session_id)
        if client_token is None:
            # Mint a token the way the backend would hand one to the desktop client.
            client_token = new_id("ct")
            self.core.store.client_tokens[client_token] = ClientToken(
                client_token, time.time() + max(3600.0, script.duration / speed * 2)
            )
        meeting = Meeting(self.core, session_id, script, speed, client_token)
        self.meetings[session_id] = meeting
        meeting.task = self.core.spawn(meeting.run(self._client()))
        return meeting

    def attach(
        self, session_id: str, script: Script, speed: float, *, origin: str = "simulate"
    ) -> Meeting:
        """Supply a meeting's content to a session some client has already started."""
        self._make_room(session_id)
        meeting = Meeting(self.core, session_id, script, speed, None, attached=True, origin=origin)
        self.meetings[session_id] = meeting
        meeting.task = self.core.spawn(meeting.run(self._client()))
        return meeting

    def set_speed(self, session_id: str, speed: float) -> Meeting | None:
        meeting = self.meetings.get(session_id)
        if meeting is not None:
            meeting.set_speed(speed)
        return meeting

    def cancel(self, session_id: str) -> None:
        meeting = self.meetings.get(session_id)
        if meeting is not None and meeting.task is not None and not meeting.task.done():
            meeting.task.cancel()

    async def stop_all(self) -> None:
        for meeting in self.meetings.values():
            if meeting.task is not None and not meeting.task.done():
                meeting.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await meeting.task
        if self._http is not None:
            await self._http.close()
            self._http = None

    def snapshot(self) -> list[dict[str, Any]]:
        return [m.to_dict() for m in self.meetings.values()]
