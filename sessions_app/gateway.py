"""The one door to VideoDB: the only module that imports ``videodb``.

It takes and returns plain values (ids, dicts, small dataclasses), never model instances,
and turns every SDK failure into ``RetryableGatewayError`` (try again later: network,
timeouts, 5xx, 429) or ``PermanentGatewayError`` (a retry would fail the same way: bad
key, unknown id, refused request). Because everything goes through here, the local
emulator and the real service are one setting apart (``VIDEODB_API_KEY``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import videodb
from django.conf import settings
from videodb.collection import Collection
from videodb.exceptions import (
    AuthenticationError,
    InvalidRequestError,
    RequestTimeoutError,
    VideodbError,
)
from videodb.rtstream import RTStream, RTStreamSceneIndex

logger = logging.getLogger(__name__)

COLLECTION = "default"
# Audio insights are batched by time so each one covers a readable stretch of the meeting;
# visual descriptions sample a few frames every few seconds.
AUDIO_BATCH = {"type": "time", "value": 30}
VISUAL_BATCH = {"type": "time", "value": 10, "frame_count": 3}
# Our indexes carry these names, so that after a crash we can find one we started but
# never recorded instead of starting a second.
AUDIO_INDEX_NAME = "copilot-audio"
VISUAL_INDEX_NAME = "copilot-visual"


class GatewayError(Exception):
    """VideoDB refused or could not be reached. ``retryable`` says whether to try again."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class RetryableGatewayError(GatewayError):
    retryable = True


class PermanentGatewayError(GatewayError):
    retryable = False


@dataclass(frozen=True)
class RemoteStream:
    id: str
    name: str
    channel_id: str = ""
    media_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class RemoteSession:
    id: str
    status: str
    end_user_id: str = ""
    callback_url: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    exported_video_id: str = ""
    export_status: str = ""
    streams: tuple[RemoteStream, ...] = ()


@dataclass(frozen=True)
class ExportResult:
    status: str
    video_id: str = ""
    stream_url: str = ""
    player_url: str = ""


_lock = threading.Lock()
_connection: Any = None


def _connect() -> Any:
    """One SDK connection per process, made on first use from settings."""
    global _connection
    with _lock:
        if _connection is None:
            api_key = settings.VIDEODB_API_KEY or settings.VIDEODB_EMULATOR_API_KEY
            _connection = videodb.connect(api_key=api_key, base_url=settings.VIDEODB_BASE_URL)
        return _connection


def reset() -> None:
    """Forget the connection (after the settings changed, e.g. in tests)."""
    global _connection
    with _lock:
        _connection = None


def _translate(exc: Exception, action: str) -> GatewayError:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    detail = str(exc)
    message = f"VideoDB could not {action}: {detail}"
    if isinstance(exc, AuthenticationError):
        return PermanentGatewayError(message, status=401)
    if isinstance(exc, RequestTimeoutError | requests.RequestException):
        return RetryableGatewayError(message, status=status)
    if isinstance(exc, InvalidRequestError):
        # No response: the connection failed or urllib3 gave up retrying 502/503/504.
        if status is None or status >= 500 or status == 429:
            return RetryableGatewayError(message, status=status)
        return PermanentGatewayError(message, status=status)
    return PermanentGatewayError(message, status=status)


class _Call:
    """``with _Call("start the transcript"):`` turns SDK errors into gateway errors."""

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, VideodbError | requests.RequestException):
            return False
        error = _translate(exc, self.action)  # type: ignore[arg-type]
        logger.warning("%s (retryable=%s)", error.message, error.retryable)
        raise error from exc


def _infer_media_types(raw: dict[str, Any]) -> tuple[str, ...]:
    declared = raw.get("media_types")
    if isinstance(declared, list) and all(isinstance(m, str) for m in declared):
        return tuple(declared)
    category = (raw.get("channel_id") or raw.get("name") or "").split(":", 1)[0].lower()
    if category in {"screen", "display", "video"}:
        return ("video",)
    if category in {"mic", "microphone", "system_audio", "audio"}:
        return ("audio",)
    return ()


def _stream_from(raw: dict[str, Any]) -> RemoteStream:
    return RemoteStream(
        id=str(raw.get("rtstream_id") or raw.get("id") or ""),
        name=str(raw.get("name") or ""),
        channel_id=str(raw.get("channel_id") or ""),
        media_types=_infer_media_types(raw),
    )


def _session_from(raw: dict[str, Any], session_id: str = "") -> RemoteSession:
    if isinstance(raw.get("data"), dict) and "status" not in raw:
        raw = raw["data"]
    streams = tuple(
        _stream_from(item) for item in raw.get("rtstreams") or [] if isinstance(item, dict)
    )
    return RemoteSession(
        id=str(raw.get("session_id") or raw.get("id") or session_id),
        status=str(raw.get("status") or ""),
        end_user_id=str(raw.get("end_user_id") or ""),
        callback_url=str(raw.get("callback_url") or ""),
        metadata=raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {},
        exported_video_id=str(raw.get("exported_video_id") or ""),
        export_status=str(raw.get("export_status") or ""),
        streams=tuple(s for s in streams if s.id),
    )


def _session_path(session_id: str) -> str:
    return f"collection/{COLLECTION}/capture/session/{session_id}"


# --- capture sessions ----------------------------------------------------------------------


def create_capture_session(
    *, end_user_id: str, callback_url: str, metadata: dict[str, Any]
) -> RemoteSession:
    with _Call("create the capture session"):
        session = _connect().create_capture_session(
            end_user_id=end_user_id,
            collection_id=COLLECTION,
            callback_url=callback_url or None,
            metadata=metadata,
        )
    if not session.id:
        raise PermanentGatewayError("VideoDB created a capture session without an id")
    return RemoteSession(
        id=session.id,
        status=session.status or "created",
        end_user_id=session.end_user_id or end_user_id,
        callback_url=session.callback_url or callback_url,
        metadata=session.metadata or {},
    )


def get_capture_session(session_id: str) -> RemoteSession:
    # The raw dict, read through the SDK's own HTTP client: the SDK's CaptureSession object
    # drops the streams' media types, which decide what AI each stream gets.
    with _Call("read the capture session"):
        raw = _connect().get(path=_session_path(session_id))
    if not isinstance(raw, dict):
        raise RetryableGatewayError("VideoDB answered the session read with no data")
    return _session_from(raw, session_id)


def generate_client_token(expires_in: int | None = None, *, end_user_id: str = "") -> str:
    """A client token for the desktop client. With ``end_user_id`` (the one the capture
    session was created for) the token reaches only that end user's sessions: the SDK's
    ``generate_client_token`` sends ``expires_in`` alone, so this is the same request, through
    the SDK's connection, with the end user named as ``create_capture_session`` names it."""
    ttl = expires_in or settings.VIDEODB_CLIENT_TOKEN_TTL
    with _Call("mint a client token"):
        if end_user_id:
            raw = _connect().post(
                path="capture/session/token",
                data={"expires_in": ttl, "end_user_id": end_user_id},
            )
            token = raw.get("token") if isinstance(raw, dict) else None
        else:
            token = _connect().generate_client_token(expires_in=ttl)
    if not token:
        raise RetryableGatewayError("VideoDB answered the token request without a token")
    return token


def export_capture_session(session_id: str) -> ExportResult:
    with _Call("export the capture session"):
        raw = _connect().post(path=f"{_session_path(session_id)}/export", data={})
    raw = raw if isinstance(raw, dict) else {}
    return ExportResult(
        status=str(raw.get("export_status") or ""),
        video_id=str(raw.get("video_id") or raw.get("exported_video_id") or ""),
        stream_url=str(raw.get("stream_url") or ""),
        player_url=str(raw.get("player_url") or ""),
    )


# --- AI operations on RTStreams -------------------------------------------------------------


# SDK objects are built locally from their ids (each is a thin wrapper around them), which
# saves a GET per operation on the hot path of starting a session's AI.


def _rtstream(rtstream_id: str) -> RTStream:
    return RTStream(_connect(), id=rtstream_id, collection_id=COLLECTION)


def _scene_index(rtstream_id: str, index_id: str) -> RTStreamSceneIndex:
    return RTStreamSceneIndex(_connect(), rtstream_index_id=index_id, rtstream_id=rtstream_id)


def start_transcript(rtstream_id: str, *, ws_connection_id: str | None) -> None:
    with _Call("start the transcript"):
        _rtstream(rtstream_id).start_transcript(ws_connection_id=ws_connection_id or None)


def _index_id(index: Any) -> str:
    index_id = getattr(index, "rtstream_index_id", None) or getattr(index, "id", None)
    if not index_id:
        raise PermanentGatewayError("VideoDB started an index without an id")
    return str(index_id)


# The audio and the visual index are one SDK call: another method, batch and name.
_INDEXES: dict[str, tuple[str, dict[str, Any], str]] = {
    "audio": ("index_audio", AUDIO_BATCH, AUDIO_INDEX_NAME),
    "visual": ("index_visuals", VISUAL_BATCH, VISUAL_INDEX_NAME),
}


def _start_index(kind: str, rtstream_id: str, prompt: str, ws_connection_id: str | None) -> str:
    method, batch, name = _INDEXES[kind]
    with _Call(f"start the {kind} index"):
        index = getattr(_rtstream(rtstream_id), method)(
            prompt=prompt,
            batch_config=batch,
            name=name,
            ws_connection_id=ws_connection_id or None,
        )
    return _index_id(index)


def index_audio(rtstream_id: str, *, prompt: str, ws_connection_id: str | None) -> str:
    return _start_index("audio", rtstream_id, prompt, ws_connection_id)


def index_visuals(rtstream_id: str, *, prompt: str, ws_connection_id: str | None) -> str:
    return _start_index("visual", rtstream_id, prompt, ws_connection_id)


def create_event(*, prompt: str, label: str) -> str:
    with _Call("create the alert event"):
        event_id = _connect().create_event(event_prompt=prompt, label=label)
    if not event_id:
        raise PermanentGatewayError("VideoDB created an event without an id")
    return str(event_id)


def create_alert(
    rtstream_id: str,
    index_id: str,
    *,
    event_id: str,
    callback_url: str,
    ws_connection_id: str | None,
) -> str:
    with _Call("create the alert"):
        alert_id = _scene_index(rtstream_id, index_id).create_alert(
            event_id, callback_url=callback_url, ws_connection_id=ws_connection_id or None
        )
    if not alert_id:
        raise PermanentGatewayError("VideoDB created an alert without an id")
    return str(alert_id)


def stop_capture_session(session_id: str, *, end_user_id: str = "") -> None:
    """Stop a capture from the backend (an operator's action).

    VideoDB lets only the desktop client stop a capture, so the backend mints a one-minute
    client token and makes the client's call with it; the API key itself is never used on
    the client path.
    """
    token = generate_client_token(60, end_user_id=end_user_id)
    with _Call("stop the capture session"):
        client = videodb.connect(session_token=token, base_url=settings.VIDEODB_BASE_URL)
        client.post(path=f"capture/session/{session_id}/stop", data={})


def find_scene_index(rtstream_id: str, name: str) -> str | None:
    """The id of the stream's scene index called ``name``, if VideoDB has one."""
    with _Call("list the stream's indexes"):
        indexes = _rtstream(rtstream_id).list_scene_indexes() or []
    for index in indexes:
        if getattr(index, "name", None) == name:
            return _index_id(index)
    return None


def find_alert(rtstream_id: str, index_id: str, *, event_id: str) -> str | None:
    """The id of the alert for ``event_id`` on that index, if VideoDB has one."""
    with _Call("list the index's alerts"):
        alerts = _scene_index(rtstream_id, index_id).list_alerts() or []
    for alert in alerts:
        if isinstance(alert, dict) and alert.get("event_id") == event_id:
            return str(alert.get("alert_id") or alert.get("id") or "") or None
    return None


# --- the real-time event socket and its gap filling -----------------------------------------


class EventSocket:
    """VideoDB's WebSocket of AI events, as opened by the SDK."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @property
    def connection_id(self) -> str:
        return str(self._connection.connection_id or "")

    async def events(self) -> Any:
        """Each event as a dict; ends when VideoDB closes the socket."""
        async for event in self._connection.receive():
            yield event

    async def close(self) -> None:
        await self._connection.close()


async def open_event_socket() -> EventSocket:
    """Open a new socket: ask VideoDB for its URL (a blocking HTTP call, run in a thread),
    then connect; the first message names the connection id operations must be given."""
    with _Call("open the event socket"):
        connection = await asyncio.to_thread(
            lambda: _connect().connect_websocket(collection_id=COLLECTION)
        )
    try:
        await connection.connect()
    except Exception as exc:  # websockets raises its own types; every one means "try again"
        raise RetryableGatewayError(f"VideoDB's event socket did not open: {exc}") from exc
    if not connection.connection_id:
        await connection.close()
        raise RetryableGatewayError("VideoDB's event socket named no connection id")
    return EventSocket(connection)


def route_index(rtstream_id: str, index_id: str, *, ws_connection_id: str) -> None:
    """Send a running index's future results to another socket: its status call with the new
    connection id (what the SDK's ``index.start()`` sends, plus ``ws_connection_id``)."""
    with _Call("re-route the index"):
        _connect().patch(
            f"rtstream/{rtstream_id}/index/scene/{index_id}/status",
            data={"action": "start", "ws_connection_id": ws_connection_id},
        )


def _every_page(action: str, fetch: Callable[[int], Any], items_key: str) -> list[dict[str, Any]]:
    """Collect ``items_key`` from ``fetch(page)`` while VideoDB says there is a next page
    (at most 200 pages: a gap longer than that is not filled in one go)."""
    items: list[dict[str, Any]] = []
    for page in range(1, 201):
        with _Call(action):
            data = fetch(page)
        data = data if isinstance(data, dict) else {}
        items.extend(item for item in data.get(items_key) or [] if isinstance(item, dict))
        if not data.get("next_page"):
            break
    return items


def transcript_since(rtstream_id: str, since_ms: int | None) -> list[dict[str, Any]]:
    """Final transcript segments ending after ``since_ms``, every page of them."""
    stream = _rtstream(rtstream_id)
    return _every_page(
        "read the transcript",
        lambda page: stream.get_transcript(page=page, page_size=500, since=since_ms),
        "segments",
    )


def index_records(rtstream_id: str, index_id: str) -> list[dict[str, Any]]:
    """Every record of a scene index (the SDK filters by time only with both bounds)."""
    index = _scene_index(rtstream_id, index_id)
    return _every_page(
        "read the index records",
        lambda page: index.get_scenes(page=page, page_size=500),
        "scenes",
    )


# --- search and jump-to-moment clips ---------------------------------------------------------


@dataclass(frozen=True)
class RemoteHit:
    """One search result. Stream hits are on the wall clock (epoch ms); video hits are
    offsets from the exported video's start (ms), because that is what a player seeks to."""

    rtstream_id: str  # "" for a video hit
    video_id: str  # "" for an rtstream hit
    start_ms: int
    end_ms: int
    text: str
    score: float
    source: str  # "transcript" | "visual" | "audio"


@dataclass(frozen=True)
class Clip:
    stream_url: str
    player_url: str


# VideoDB may answer a search that finds nothing with an error saying "No results found"
# instead of an empty list; both mean "no hits", not a failure.
_NO_RESULTS = "no results found"


def _epoch_ms(value: Any) -> int:
    """VideoDB documents stream search times as "Unix timestamp" (seconds) while its event
    times are milliseconds, and the emulator answers in milliseconds: anything below 1e11
    cannot be a millisecond time after 1973, so it is taken as seconds."""
    number = float(value or 0)
    return round(number * 1000 if abs(number) < 1e11 else number)


def _hit_source(metadata: Any, index_name: Any) -> str:
    source = str(metadata.get("source") or "") if isinstance(metadata, dict) else ""
    if source in {"visual_index", "scene_index", "visual"}:
        return "visual"
    if source in {"audio_index", "audio"}:
        return "audio"
    if source == "transcript" or not index_name:
        return "transcript"
    # No source given but an index was named: our own index names (copilot-visual,
    # copilot-audio) say which kind it is.
    return "visual" if "visual" in str(index_name).lower() else "audio"


def _shots(action: str, search: Callable[[], Any]) -> list[Any]:
    """The shots of ``search()``'s result, none when VideoDB says it found nothing."""
    with _Call(action):
        try:
            return search().get_shots() or []
        except InvalidRequestError as exc:
            if _NO_RESULTS in str(exc).lower():
                return []
            raise


def search_stream(rtstream_id: str, query: str, *, limit: int = 10) -> list[RemoteHit]:
    """The stream's best matches for ``query`` (transcript and index records), best first,
    with wall-clock times in epoch milliseconds."""
    shots = _shots(
        "search the stream",
        lambda: _rtstream(rtstream_id).search(query, result_threshold=limit),
    )
    return [
        RemoteHit(
            rtstream_id=str(shot.rtstream_id or rtstream_id),
            video_id="",
            start_ms=_epoch_ms(shot.start),
            end_ms=_epoch_ms(shot.end),
            text=str(shot.text or ""),
            score=float(shot.search_score or 0.0),
            source=_hit_source(shot.metadata, shot.scene_index_name),
        )
        for shot in shots
    ]


def search_videos(query: str, *, limit: int = 20) -> list[RemoteHit]:
    """Matches for ``query`` in what was said in the collection's exported videos (legacy
    semantic search over their spoken-word index), best first; times are offsets from each
    video's start in milliseconds."""
    shots = _shots(
        "search the exported videos",
        lambda: Collection(_connect(), id=COLLECTION).legacy_search(
            query, search_type="semantic", index_type="spoken_word", result_threshold=limit
        ),
    )
    return [
        RemoteHit(
            rtstream_id="",
            video_id=str(shot.video_id or ""),
            start_ms=round(float(shot.start or 0) * 1000),
            end_ms=round(float(shot.end or 0) * 1000),
            text=str(shot.text or ""),
            score=float(shot.search_score or 0.0),
            source=_hit_source(shot.metadata, shot.scene_index_name),
        )
        for shot in shots
        if shot.video_id
    ]


def stream_clip(rtstream_id: str, start_ms: int, end_ms: int, *, title: str = "") -> Clip:
    """A playable clip of the stream between two wall-clock times (epoch ms).

    The SDK documents the range as Unix timestamps, so whole seconds are sent, widened
    outwards so the clip still covers the moment asked for.
    """
    if end_ms <= start_ms:
        raise ValueError(f"end_ms ({end_ms}) must be after start_ms ({start_ms})")
    start_s = start_ms // 1000
    end_s = max(-(-end_ms // 1000), start_s + 1)
    with _Call("make a clip of the stream"):
        stream = _rtstream(rtstream_id)
        player_url = stream.generate_stream(
            start_s, end_s, player_config={"title": title} if title else None
        )
    if not player_url or not stream.stream_url:
        raise RetryableGatewayError("VideoDB answered the clip request without its URLs")
    return Clip(stream_url=str(stream.stream_url), player_url=str(player_url))


# --- text generation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    """What ``generate_text`` answered: the model's output (an object for JSON, else text),
    and the model that made it."""

    output: Any
    model_name: str


def generate_text(prompt: str, *, model_name: str, response_type: str = "json") -> Generated:
    """VideoDB's own text generation (``collection.generate_text``), the one model Copilot
    uses. Large prompts are uploaded by the SDK itself. The output is returned as VideoDB
    gave it: checking it is the caller's job."""
    with _Call("generate text"):
        data = Collection(_connect(), id=COLLECTION).generate_text(
            prompt, model_name=model_name, response_type=response_type
        )
    if isinstance(data, dict) and "output" in data:
        used = str(data.get("model_name") or model_name)
        return Generated(output=data["output"], model_name=used)
    # Older answers (and ``wait=False``) carry the output itself.
    return Generated(output=data, model_name=model_name)
