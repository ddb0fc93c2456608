"""REST handlers: RTStreams, transcription, scene indexes, alerts, events, search (of a
stream, of the collection's exported videos, of one video), streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import assets, search
from .api_capture import collection_id, core_of
from .auth import api
from .core import Emulator
from .errors import ApiError, bad_request, ok
from .routing import Routes
from .simulator import DEFAULT_AUDIO_BATCH, DEFAULT_VISUAL_WINDOW
from .state import Alert, Operation, RTEvent, RTStream, SceneIndex, new_id, now_ms
from .validation import (
    json_body,
    opt_bool,
    opt_dict,
    opt_number,
    opt_str,
    query_int,
    query_number,
    req_str,
    to_epoch_ms,
    type_name,
)

routes = Routes()
DEFAULT_ENGINE = "assemblyai"


def _rts(request: web.Request) -> RTStream:
    return core_of(request).rtstream(request.match_info["rid"])


def _index(request: web.Request, rts: RTStream) -> SceneIndex:
    iid = request.match_info["iid"]
    index = rts.indexes.get(iid)
    if index is None:
        raise ApiError(404, f"scene index '{iid}' not found on rtstream '{rts.id}'")
    return index


def _action(body: dict[str, Any], allowed: tuple[str, ...]) -> str:
    action = req_str(body, "action")
    if action not in allowed:
        raise bad_request(f"'action' must be one of {', '.join(allowed)}, got {action!r}")
    return action


def _require_live(rts: RTStream) -> None:
    if rts.status == "stopped":
        raise ApiError(409, f"rtstream '{rts.id}' has stopped; nothing left to process")


@routes.add("GET", "rtstream/{rid}")
@api()
async def get_rtstream(request: web.Request) -> web.Response:
    return ok(_rts(request).to_dict(core_of(request).base_url))


_ORDERINGS = ("created_at", "name", "status")


@routes.add("GET", "rtstream")
@api()
async def list_rtstreams(request: web.Request) -> web.Response:
    """``coll.list_rtstreams(limit, offset, status, name, ordering)``: ``{count, results}``."""
    core = core_of(request)
    streams = list(core.store.rtstreams.values())
    for key in ("status", "name"):
        wanted = request.query.get(key)
        if wanted:
            streams = [r for r in streams if getattr(r, key) == wanted]
    ordering = request.query.get("ordering")
    if ordering:
        field_name = ordering.removeprefix("-")
        if field_name not in _ORDERINGS:
            raise bad_request(
                f"query parameter 'ordering' must be one of {', '.join(_ORDERINGS)} "
                f"(or '-' before one for descending), got {ordering!r}"
            )
        streams.sort(key=lambda r: getattr(r, field_name), reverse=ordering.startswith("-"))
    offset = query_int(request, "offset", 0, minimum=0)
    limit = query_int(request, "limit", max(len(streams), 1), maximum=10_000)
    page = streams[offset : offset + limit]
    return ok({"count": len(streams), "results": [r.to_dict(core.base_url) for r in page]})


def stop_stream(rts: RTStream) -> None:
    """The stream stops recording and every AI operation on it stops."""
    if rts.status == "stopped":
        return
    rts.status = "stopped"
    rts.stopped_at_ms = now_ms()
    if rts.transcript.running:
        rts.transcript.running = False
        rts.transcript.stopped_at = rts.stopped_at_ms
    for index in rts.indexes.values():
        index.op.running = False


def start_stream(core: Emulator, rts: RTStream) -> None:
    """A stopped stream records again (a new recording); its AI operations stay stopped
    until they are started again, as after any stop."""
    session = core.store.sessions[rts.session_id]
    if session.status not in ("starting", "active"):
        raise ApiError(
            409,
            f"capture session '{session.id}' is '{session.status}': its desktop client no "
            f"longer sends rtstream '{rts.id}', so it cannot start again",
        )
    if rts.status == "stopped":
        rts.status = "connected"
        rts.recording_started_ms = now_ms()
        rts.stopped_at_ms = None


@routes.add("PATCH", "rtstream/{rid}/status")
@api()
async def rtstream_status(request: web.Request) -> web.Response:
    """``rts.start()`` / ``rts.stop()``: ``{"action": "start"|"stop"}``."""
    rts = _rts(request)
    body = await json_body(request, allow_empty=False)
    core = core_of(request)
    if _action(body, ("start", "stop")) == "start":
        start_stream(core, rts)
    else:
        stop_stream(rts)
    return ok(rts.to_dict(core.base_url))


@routes.add("POST", "rtstream/{rid}/export")
@api()
async def export_rtstream(request: web.Request) -> web.Response:
    """``rts.export(name=None)``: the stream's latest recording as a video (a screen) or an
    audio asset (a microphone or system audio; no stream or player URL)."""
    rts = _rts(request)
    body = await json_body(request)
    name = opt_str(body, "name")
    core = core_of(request)
    return ok(assets.export_stream(core.store, core.base_url, rts, name))


# -- transcription -------------------------------------------------------------


def _transcript_status(rts: RTStream) -> dict[str, Any]:
    op = rts.transcript
    status = "running" if op.running else ("stopped" if op.started_at else "not_started")
    return {
        "rtstream_id": rts.id,
        "status": status,
        "engine": op.engine or DEFAULT_ENGINE,
        "ws_connection_id": op.ws_connection_id,
        "start_time": op.started_at,
        "end_time": op.stopped_at,
    }


@routes.add("POST", "rtstream/{rid}/transcription")
@api()
async def transcription_action(request: web.Request) -> web.Response:
    rts = _rts(request)
    body = await json_body(request, allow_empty=False)
    action = _action(body, ("start", "stop"))
    engine = opt_str(body, "engine")
    ws_id = opt_str(body, "ws_connection_id")
    op = rts.transcript
    if action == "start":
        _require_live(rts)
        # A restart re-routes future events to the new connection.
        if not op.running:
            op.started_at = now_ms()
            op.stopped_at = None
        op.running = True
        op.ws_connection_id = ws_id
        op.engine = engine or op.engine
    elif op.running:
        op.running = False
        op.stopped_at = now_ms()
    return ok(_transcript_status(rts))


@routes.add("GET", "rtstream/{rid}/transcription")
@api()
async def get_transcript(request: web.Request) -> web.Response:
    rts = _rts(request)
    page = query_int(request, "page", 1)
    page_size = query_int(request, "page_size", 100, maximum=1000)
    start = query_number(request, "start")
    end = query_number(request, "end")
    since = query_number(request, "since")
    segments = rts.segments
    if start is not None:
        lo = to_epoch_ms(start)
        segments = [s for s in segments if s["end"] >= lo]
    if end is not None:
        hi = to_epoch_ms(end)
        segments = [s for s in segments if s["start"] <= hi]
    if since is not None:
        after = to_epoch_ms(since)
        segments = [s for s in segments if s["end"] > after]
    total = len(segments)
    chunk = segments[(page - 1) * page_size : page * page_size]
    return ok(
        {
            **_transcript_status(rts),
            "page": page,
            "page_size": page_size,
            "total": total,
            "next_page": page * page_size < total,
            "segments": [dict(s) for s in chunk],
        }
    )


# -- scene indexes -------------------------------------------------------------


def _extraction(extraction_type: str, config: dict[str, Any] | None) -> dict[str, Any]:
    if extraction_type == "transcript":
        cfg = dict(DEFAULT_AUDIO_BATCH)
        if config:
            segmenter = config.get("segmenter") or cfg["segmenter"]
            if segmenter not in ("word", "sentence", "time"):
                raise bad_request("'extraction_config.segmenter' must be word, sentence or time")
            value = config.get("segmentation_value", cfg["segmentation_value"])
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise bad_request("'extraction_config.segmentation_value' must be a number > 0")
            cfg = {"segmenter": segmenter, "segmentation_value": value}
        return cfg
    cfg = {"time": DEFAULT_VISUAL_WINDOW, "frame_count": 5}
    for key in ("time", "frame_count"):
        value = (config or {}).get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise bad_request(f"'extraction_config.{key}' must be a number > 0")
        cfg[key] = value
    return cfg


@routes.add("POST", "rtstream/{rid}/index/scene")
@api()
async def create_index(request: web.Request) -> web.Response:
    rts = _rts(request)
    body = await json_body(request, allow_empty=False)
    extraction_type = opt_str(body, "extraction_type") or "time"
    if extraction_type not in ("transcript", "time", "shot"):
        raise bad_request("'extraction_type' must be 'transcript', 'time' or 'shot'")
    if extraction_type == "transcript" and "audio" not in rts.media_types:
        raise bad_request(f"rtstream '{rts.id}' has no audio; use a visual extraction_type")
    if extraction_type != "transcript" and "video" not in rts.media_types:
        raise bad_request(f"rtstream '{rts.id}' has no video; use extraction_type 'transcript'")
    config = _extraction(extraction_type, opt_dict(body, "extraction_config"))
    opt_dict(body, "model_config")
    _require_live(rts)
    kind = "audio" if extraction_type == "transcript" else "visual"
    index = SceneIndex(
        id=new_id("rtsi"),
        rtstream_id=rts.id,
        extraction_type=extraction_type,
        extraction_config=config,
        prompt=opt_str(body, "prompt") or f"Describe the {kind}",
        name=opt_str(body, "name") or f"{kind}-index",
        model_name=opt_str(body, "model_name"),
        op=Operation(
            running=True, ws_connection_id=opt_str(body, "ws_connection_id"), started_at=now_ms()
        ),
    )
    rts.indexes[index.id] = index
    return ok(index.to_dict())


@routes.add("GET", "rtstream/{rid}/index/scene")
@api()
async def list_indexes(request: web.Request) -> web.Response:
    rts = _rts(request)
    return ok({"scene_indexes": [i.to_dict() for i in rts.indexes.values()]})


@routes.add("GET", "rtstream/{rid}/index/scene/{iid}")
@api()
async def get_index_records(request: web.Request) -> web.Response:
    rts = _rts(request)
    index = _index(request, rts)
    page = query_int(request, "page", 1)
    page_size = query_int(request, "page_size", 100, maximum=1000)
    start = query_number(request, "start")
    end = query_number(request, "end")
    records = index.records
    if start is not None:
        lo = to_epoch_ms(start)
        records = [r for r in records if r["end"] >= lo]
    if end is not None:
        hi = to_epoch_ms(end)
        records = [r for r in records if r["start"] <= hi]
    chunk = records[(page - 1) * page_size : page * page_size]
    return ok(
        {
            **index.to_dict(),
            "scene_index_records": [dict(r) for r in chunk],
            "page": page,
            "page_size": page_size,
            "total": len(records),
            "next_page": page * page_size < len(records),
        }
    )


@routes.add("GET", "rtstream/{rid}/index/{iid}")
@api()
async def get_index(request: web.Request) -> web.Response:
    rts = _rts(request)
    return ok(_index(request, rts).to_dict())


@routes.add("PATCH", "rtstream/{rid}/index/scene/{iid}/status")
@api()
async def index_status(request: web.Request) -> web.Response:
    rts = _rts(request)
    index = _index(request, rts)
    body = await json_body(request, allow_empty=False)
    action = _action(body, ("start", "stop"))
    ws_id = opt_str(body, "ws_connection_id")
    if action == "start":
        _require_live(rts)
        index.op.running = True
        if ws_id:
            index.op.ws_connection_id = ws_id
    else:
        index.op.running = False
    return ok(index.to_dict())


# -- alerts and events ---------------------------------------------------------


@routes.add("POST", "rtstream/{rid}/index/{iid}/alert")
@api()
async def create_alert(request: web.Request) -> web.Response:
    rts = _rts(request)
    index = _index(request, rts)
    body = await json_body(request, allow_empty=False)
    event_id = req_str(body, "event_id")
    core = core_of(request)
    if event_id not in core.store.events:
        raise ApiError(404, f"event '{event_id}' not found")
    callback_url = opt_str(body, "callback_url")
    if callback_url is not None and not callback_url.startswith(("http://", "https://")):
        raise bad_request("'callback_url' must be an http(s) URL")
    alert = Alert(
        id=new_id("alrt"),
        rtstream_id=rts.id,
        index_id=index.id,
        event_id=event_id,
        callback_url=callback_url or "",
        ws_connection_id=opt_str(body, "ws_connection_id"),
    )
    index.alerts[alert.id] = alert
    core.store.alerts[alert.id] = alert
    return ok({"alert_id": alert.id, **alert.to_dict()})


@routes.add("GET", "rtstream/{rid}/index/{iid}/alert")
@api()
async def list_alerts(request: web.Request) -> web.Response:
    rts = _rts(request)
    index = _index(request, rts)
    return ok({"alerts": [a.to_dict() for a in index.alerts.values()]})


@routes.add("PATCH", "rtstream/{rid}/index/{iid}/alert/{aid}/status")
@api()
async def alert_status(request: web.Request) -> web.Response:
    rts = _rts(request)
    index = _index(request, rts)
    alert = index.alerts.get(request.match_info["aid"])
    if alert is None:
        raise ApiError(404, f"alert '{request.match_info['aid']}' not found")
    body = await json_body(request, allow_empty=False)
    alert.status = _alert_status(body)
    return ok(alert.to_dict())


def _alert_status(body: dict[str, Any]) -> str:
    """The SDK sends {"action": "enable"|"disable"}; the OpenAPI spec {"status": "enabled"|...}."""
    for key, allowed in (("action", ("enable", "disable")), ("status", ("enabled", "disabled"))):
        if key not in body:
            continue
        value = body[key]
        if not isinstance(value, str) or value not in allowed:
            got = repr(value) if isinstance(value, str) else type_name(value)
            raise bad_request(f"'{key}' must be '{allowed[0]}' or '{allowed[1]}', got {got}")
        return value if key == "status" else f"{value}d"
    raise bad_request(
        "body must be {'action': 'enable'|'disable'} or {'status': 'enabled'|'disabled'}"
    )


@routes.add("POST", "rtstream/event")
@api()
async def create_event(request: web.Request) -> web.Response:
    body = await json_body(request, allow_empty=False)
    event = RTEvent(new_id("evt"), req_str(body, "event_prompt"), req_str(body, "label"))
    core_of(request).store.events[event.id] = event
    return ok(event.to_dict())


@routes.add("GET", "rtstream/event")
@api()
async def list_events(request: web.Request) -> web.Response:
    return ok({"events": [e.to_dict() for e in core_of(request).store.events.values()]})


# -- search and streams --------------------------------------------------------


def _stream_docs(rts: RTStream, index_id: str | None) -> list[dict[str, Any]]:
    """What ``rts.search`` ranks: the stored transcript (unless one index is asked for) and
    the records of the stream's indexes, times as stored (epoch ms)."""
    base = {"rtstream_id": rts.id, "rtstream_name": rts.name}
    docs: list[dict[str, Any]] = []
    if index_id is None:
        docs.extend(
            {
                **base,
                "start": s["start"],
                "end": s["end"],
                "text": s["text"],
                "scene_index_id": None,
                "scene_index_name": None,
                "metadata": {"source": "transcript"},
            }
            for s in rts.segments
        )
    for index in rts.indexes.values():
        if index_id is not None and index.id != index_id:
            continue
        docs.extend(
            {
                **base,
                "start": r["start"],
                "end": r["end"],
                "text": r["text"],
                "scene_index_id": index.id,
                "scene_index_name": index.name,
                "metadata": {"source": f"{index.kind}_index"},
            }
            for r in index.records
        )
    return docs


def _stream_query(body: dict[str, Any]) -> tuple[str, str | None, int, float]:
    query = req_str(body, "query")
    index_id = opt_str(body, "scene_index_id")
    limit = int(opt_number(body, "result_threshold", minimum=1, integer=True) or 5)
    threshold = opt_number(body, "score_threshold", minimum=0)
    opt_number(body, "dynamic_score_percentage", minimum=0)
    if body.get("filter") is not None and not isinstance(body["filter"], list):
        raise bad_request("'filter' must be a list")
    return query, index_id, limit, 0.2 if threshold is None else threshold


@routes.add("POST", "rtstream/{rid}/search")
@api()
async def search_rtstream(request: web.Request) -> web.Response:
    rts = _rts(request)
    query, index_id, limit, threshold = _stream_query(await json_body(request, allow_empty=False))
    if index_id is not None and index_id not in rts.indexes:
        raise ApiError(404, f"scene index '{index_id}' not found on rtstream '{rts.id}'")
    results = search.rank(query, _stream_docs(rts, index_id), limit=limit, threshold=threshold)
    for result in results:  # rts.search answers without the stream's own id and name
        del result["rtstream_id"], result["rtstream_name"]
    return ok({"results": results})


@routes.add("POST", "rtstream/collection/{coll}/search")
@api()
async def search_collection_rtstreams(request: web.Request) -> web.Response:
    """``coll.legacy_search(query, namespace="rtstream")``: every stream of the collection;
    each result names its ``rtstream_id`` and ``rtstream_name``."""
    coll = collection_id(request)
    query, index_id, limit, threshold = _stream_query(await json_body(request, allow_empty=False))
    streams = [r for r in core_of(request).store.rtstreams.values() if r.collection_id == coll]
    if index_id is not None and not any(index_id in r.indexes for r in streams):
        raise ApiError(404, f"scene index '{index_id}' not found on any rtstream of '{coll}'")
    docs = [doc for rts in streams for doc in _stream_docs(rts, index_id)]
    return ok({"results": search.rank(query, docs, limit=limit, threshold=threshold)})


@routes.add("GET", "rtstream/{rid}/stream")
@api()
async def generate_stream(request: web.Request) -> web.Response:
    rts = _rts(request)
    start = query_number(request, "start")
    end = query_number(request, "end")
    if start is None or end is None:
        raise bad_request("query parameters 'start' and 'end' are required")
    start_ms, end_ms = int(to_epoch_ms(start)), int(to_epoch_ms(end))
    if end_ms <= start_ms:
        raise bad_request("'end' must be after 'start'")
    base = core_of(request).base_url
    title = request.query.get("player_title")
    return ok(
        {
            "rtstream_id": rts.id,
            "start": start_ms,
            "end": end_ms,
            "stream_url": f"{base}/_media/rtstream/{rts.id}/{start_ms}-{end_ms}/stream.m3u8",
            "player_url": f"{base}/_media/player/rtstream/{rts.id}?start={start_ms}&end={end_ms}",
            "player_title": title,
        }
    )


# -- legacy search over exported videos ----------------------------------------------------


@dataclass(frozen=True)
class _VideoQuery:
    query: str
    search_type: str
    index_type: str
    scene_index_id: str | None
    limit: int
    threshold: float
    sort_docs_on: str | None


def _video_query(body: dict[str, Any], search_types: tuple[str, ...]) -> _VideoQuery:
    """Read the body of ``SemanticSearch.search_inside_collection`` / ``search_inside_video``.

    The SDK sends every key, most of them null (``filter`` is ``[]``), so null means "not
    given"; options the emulator cannot honour (reranking, stitching) are type-checked and
    otherwise ignored."""
    query = req_str(body, "query")
    search_type = opt_str(body, "search_type") or "semantic"
    if search_type not in search_types:
        raise bad_request(
            f"'search_type' must be one of {', '.join(search_types)}, got {search_type!r}"
            + (
                " (collection search is semantic only; keyword and scene search work "
                "inside one video: POST video/{id}/search)"
                if search_type in search.SEARCH_TYPES
                else ""
            )
        )
    index_type = opt_str(body, "index_type") or "spoken_word"
    if index_type not in search.INDEX_TYPES:
        raise bad_request(
            f"'index_type' must be one of {', '.join(search.INDEX_TYPES)}, got {index_type!r}"
        )
    scene_index_id = opt_str(body, "scene_index_id")
    if scene_index_id is not None and index_type != "scene":
        raise bad_request("'scene_index_id' needs index_type 'scene'")
    limit = int(opt_number(body, "result_threshold", minimum=1, integer=True) or 5)
    threshold = opt_number(body, "score_threshold", minimum=0)
    opt_number(body, "dynamic_score_percentage", minimum=0)
    sort_docs_on = opt_str(body, "sort_docs_on")
    if sort_docs_on not in (None, "score", "start"):
        raise bad_request(f"'sort_docs_on' must be 'score' or 'start', got {sort_docs_on!r}")
    if body.get("filter") is not None and not isinstance(body["filter"], list):
        raise bad_request("'filter' must be a list")
    opt_str(body, "algorithm")
    opt_bool(body, "stitch")
    opt_bool(body, "rerank")
    opt_dict(body, "rerank_params")
    return _VideoQuery(
        query=query,
        search_type=search_type,
        index_type=index_type,
        scene_index_id=scene_index_id,
        limit=limit,
        threshold=0.2 if threshold is None else threshold,
        sort_docs_on=sort_docs_on,
    )


def _search_videos(request: web.Request, video_ids: list[str], q: _VideoQuery) -> web.Response:
    store = core_of(request).store
    if q.scene_index_id is not None and not any(
        q.scene_index_id in search.index_ids(store, v) for v in video_ids
    ):
        raise ApiError(404, f"scene index '{q.scene_index_id}' not found in the searched videos")
    docs = [
        doc
        for video_id in video_ids
        for doc in search.video_docs(
            store, video_id, index_type=q.index_type, scene_index_id=q.scene_index_id
        )
    ]
    ranked = search.rank(q.query, docs, limit=q.limit, threshold=q.threshold)
    return ok({"results": search.video_results(store, ranked, sort_docs_on=q.sort_docs_on)})


@routes.add("POST", "collection/{coll}/search")
@api()
async def search_collection(request: web.Request) -> web.Response:
    """Legacy collection search: every exported session of the collection, as a video."""
    coll = collection_id(request)
    q = _video_query(await json_body(request, allow_empty=False), ("semantic",))
    store = core_of(request).store
    video_ids = [
        video_id
        for video_id, video in store.videos.items()
        if store.sessions[video["session_id"]].collection_id == coll
    ]
    return _search_videos(request, video_ids, q)


@routes.add("POST", "video/{vid}/search")
@api()
async def search_video(request: web.Request) -> web.Response:
    video_id = request.match_info["vid"]
    if video_id not in core_of(request).store.videos:
        raise ApiError(404, f"video '{video_id}' not found")
    q = _video_query(await json_body(request, allow_empty=False), search.SEARCH_TYPES)
    return _search_videos(request, [video_id], q)
