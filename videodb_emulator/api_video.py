"""REST handlers for exported videos and audio assets: get, list, rename, delete, transcripts,
spoken-word indexing, scene indexes, Search V2, streams. What each asset holds is in
``assets``; legacy search (``POST video/{id}/search``) lives with the other searches in
``api_rtstream``."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from . import assets, search
from .api_capture import collection_id, core_of
from .auth import api
from .core import Emulator
from .errors import ApiError, bad_request, ok
from .routing import Routes
from .state import DEFAULT_COLLECTION
from .validation import (
    json_body,
    opt_bool,
    opt_dict,
    opt_number,
    opt_str,
    query_number,
    req_str,
    type_name,
)

routes = Routes()
DEFAULT_TOP_K = 10
DEFAULT_SCORE_THRESHOLD = 0.2
SEGMENTATION_TYPES = ("sentence", "llm")


def _collection_param(request: web.Request) -> None:
    """The SDK sends ``?collection_id=`` with most video calls; only one collection exists."""
    coll = request.query.get("collection_id")
    if coll is not None and coll != DEFAULT_COLLECTION:
        raise ApiError(404, f"collection '{coll}' not found (the emulator has only 'default')")


def _asset(request: web.Request, kind: str) -> tuple[str, dict[str, Any]]:
    _collection_param(request)
    ident = request.match_info["vid" if kind == "video" else "aid"]
    store = core_of(request).store
    found = (store.videos if kind == "video" else store.audios).get(ident)
    if found is None:
        raise ApiError(404, f"{kind} '{ident}' not found")
    return ident, found


def video_dict(core: Emulator, video_id: str, video: dict[str, Any]) -> dict[str, Any]:
    """The fields ``Video(**data)`` reads, plus ``created_at``."""
    session = core.store.sessions[video["session_id"]]
    return {
        "id": video_id,
        "collection_id": session.collection_id,
        "name": assets.name_of(core.store, video),
        "description": None,
        **assets.urls(core.base_url, video_id),
        "thumbnail_url": None,
        "length": float(video["duration"]),
        "created_at": assets.created_at(core.store, video),
    }


def audio_dict(core: Emulator, audio_id: str, audio: dict[str, Any]) -> dict[str, Any]:
    session = core.store.sessions[audio["session_id"]]
    return {
        "id": audio_id,
        "collection_id": session.collection_id,
        "name": assets.name_of(core.store, audio),
        "length": float(audio["duration"]),
        "created_at": assets.created_at(core.store, audio),
    }


# -- videos ----------------------------------------------------------------------


@routes.add("GET", "video")
@api()
async def list_videos(request: web.Request) -> web.Response:
    _collection_param(request)
    core = core_of(request)
    return ok({"videos": [video_dict(core, i, v) for i, v in core.store.videos.items()]})


@routes.add("GET", "video/{vid}")
@api()
async def get_video(request: web.Request) -> web.Response:
    video_id, video = _asset(request, "video")
    return ok(video_dict(core_of(request), video_id, video))


@routes.add("PATCH", "video/{vid}")
@api()
async def update_video(request: web.Request) -> web.Response:
    """``video.update(name=...)``."""
    video_id, video = _asset(request, "video")
    body = await json_body(request, allow_empty=False)
    if "name" in body:
        video["name"] = req_str(body, "name")
    return ok(video_dict(core_of(request), video_id, video))


@routes.add("DELETE", "video/{vid}")
@api()
async def delete_video(request: web.Request) -> web.Response:
    """``video.delete()`` / ``coll.delete_video(id)``: gone from get, list, search and media.
    The session keeps its ``exported_video_id``."""
    video_id, _ = _asset(request, "video")
    del core_of(request).store.videos[video_id]
    return ok(None, message="video deleted")


# -- transcripts and spoken-word indexing ----------------------------------------


def _transcript_query(request: web.Request) -> dict[str, Any]:
    segmenter = request.query.get("segmenter") or "word"
    if segmenter not in assets.SEGMENTERS:
        raise bad_request(
            f"query parameter 'segmenter' must be one of {', '.join(assets.SEGMENTERS)}, "
            f"got {segmenter!r}"
        )
    window = query_number(request, "length", 1.0, minimum=0)
    if not window:
        raise bad_request("query parameter 'length' must be > 0")
    start = query_number(request, "start", minimum=0)
    end = query_number(request, "end", minimum=0)
    if start is not None and end is not None and start > end:
        raise bad_request("query parameter 'start' must be <= 'end'")
    force = request.query.get("force")
    if force not in (None, "", "true", "false"):
        raise bad_request(f"query parameter 'force' must be 'true' or 'false', got {force!r}")
    return {"segmenter": segmenter, "length": window, "start": start, "end": end}


async def _get_transcript(request: web.Request, kind: str) -> web.Response:
    _, asset = _asset(request, kind)
    v = assets.view(core_of(request).store, asset)
    return ok(assets.transcript(v, **_transcript_query(request)))


async def _generate_transcript(request: web.Request, kind: str) -> web.Response:
    """``generate_transcript(force, language_code)``: the recording is transcribed already,
    so this answers the word-level transcript at once."""
    _, asset = _asset(request, kind)
    body = await json_body(request)
    opt_bool(body, "force")
    opt_str(body, "language_code")
    return ok(assets.transcript(assets.view(core_of(request).store, asset)))


@routes.add("GET", "video/{vid}/transcription")
@api()
async def get_video_transcript(request: web.Request) -> web.Response:
    """``video.get_transcript(start, end, segmenter, length, force)`` and
    ``get_transcript_text()``: ``{word_timestamps: [{start, end, text}], text}``."""
    return await _get_transcript(request, "video")


@routes.add("POST", "video/{vid}/transcription")
@api()
async def generate_video_transcript(request: web.Request) -> web.Response:
    return await _generate_transcript(request, "video")


@routes.add("POST", "video/{vid}/index")
@api()
async def index_spoken_words(request: web.Request) -> web.Response:
    """``video.index_spoken_words(language_code, segmentation_type, force, callback_url)``.

    The SDK documents an error for a video already indexed; ``force`` indexes again."""
    video_id, video = _asset(request, "video")
    body = await json_body(request)
    index_type = opt_str(body, "index_type") or "spoken_word"
    if index_type != "spoken_word":
        raise bad_request(
            f"'index_type' must be 'spoken_word', got {index_type!r} (scenes are indexed with "
            "video.index_scenes(), which the emulator does not serve)"
        )
    opt_str(body, "language_code")
    segmentation = opt_str(body, "segmentation_type") or "sentence"
    if segmentation not in SEGMENTATION_TYPES:
        raise bad_request(f"'segmentation_type' must be 'sentence' or 'llm', got {segmentation!r}")
    force = opt_bool(body, "force")
    if opt_str(body, "callback_url") is not None:
        raise bad_request(
            "'callback_url' is not supported by the emulator: indexing finishes at once"
        )
    if video.get("spoken_words_indexed") and not force:
        raise ApiError(
            409,
            f"spoken words of video '{video_id}' are already indexed (force=True indexes again)",
        )
    video["spoken_words_indexed"] = True
    return ok({"video_id": video_id, "index_type": "spoken_word", "status": "done"})


# -- scene indexes ---------------------------------------------------------------


@routes.add("GET", "video/{vid}/index/scene")
@api()
async def list_scene_indexes(request: web.Request) -> web.Response:
    """``video.list_scene_index()``: the visual indexes that ran on the video's screen."""
    _, video = _asset(request, "video")
    v = assets.view(core_of(request).store, video)
    return ok(
        {
            "scene_indexes": [
                {
                    "scene_index_id": index.id,
                    "name": index.name,
                    "prompt": index.prompt,
                    "extraction_type": index.extraction_type,
                    "status": "done",
                }
                for index in assets.visual_indexes(v)
            ]
        }
    )


@routes.add("GET", "video/{vid}/index/scene/{iid}")
@api()
async def get_scene_index(request: web.Request) -> web.Response:
    """``video.get_scene_index(id)``: ``{scene_index_records: [{start, end, description}]}``."""
    video_id, video = _asset(request, "video")
    v = assets.view(core_of(request).store, video)
    iid = request.match_info["iid"]
    index = next((i for i in assets.visual_indexes(v) if i.id == iid), None)
    if index is None:
        raise ApiError(404, f"scene index '{iid}' not found on video '{video_id}'")
    return ok({"scene_index_id": iid, "scene_index_records": assets.scene_records(v, index)})


# -- Search V2 -------------------------------------------------------------------


def _v2_options(body: dict[str, Any]) -> tuple[str, int, bool, str | None]:
    """Read ``search(query, top_k, mode, return_fields, include_clip, session_id, config)``;
    ``mode``, ``return_fields`` and ``config`` are type-checked and otherwise ignored."""
    query = req_str(body, "query")
    top_k = int(opt_number(body, "top_k", minimum=1, integer=True) or DEFAULT_TOP_K)
    if top_k > 1000:
        raise bad_request("'top_k' must be <= 1000")
    opt_str(body, "mode")
    fields = body.get("return_fields")
    if fields is not None and not isinstance(fields, list | dict | str):
        raise bad_request(
            f"'return_fields' must be a list, an object or a string, got {type_name(fields)}"
        )
    include_clip = bool(opt_bool(body, "include_clip"))
    session_id = opt_str(body, "session_id")
    opt_dict(body, "config")
    return query, top_k, include_clip, session_id


def _v2_answer(request: web.Request, video_ids: list[str], body: dict[str, Any]) -> web.Response:
    """Spoken words and scene records of the videos, ranked as every emulator search is, in
    the envelope ``SearchResponse`` reads (``response_type: "shots"``)."""
    query, top_k, include_clip, session_id = _v2_options(body)
    core = core_of(request)
    docs = [
        doc
        for video_id in video_ids
        for index_type in search.INDEX_TYPES
        for doc in search.video_docs(core.store, video_id, index_type=index_type)
    ]
    ranked = search.rank(query, docs, limit=top_k, threshold=DEFAULT_SCORE_THRESHOLD)
    if include_clip:
        base = core.base_url
        ranked = [{**d, **_clip(base, d["video_id"], d["start"], d["end"])} for d in ranked]
    results = search.video_results(core.store, ranked, sort_docs_on=None)
    return ok(
        {"response_type": "shots", "session_id": session_id, "results": results, "warnings": []}
    )


@routes.add("POST", "video/{vid}/search/v2")
@api()
async def search_video_v2(request: web.Request) -> web.Response:
    """``video.search(query)`` without legacy options (Search V2)."""
    video_id, _ = _asset(request, "video")
    return _v2_answer(request, [video_id], await json_body(request, allow_empty=False))


@routes.add("POST", "collection/{coll}/search/v2")
@api()
async def search_collection_v2(request: web.Request) -> web.Response:
    """``coll.search(query)`` without legacy options (Search V2)."""
    coll = collection_id(request)
    body = await json_body(request, allow_empty=False)
    store = core_of(request).store
    video_ids = [
        video_id
        for video_id, video in store.videos.items()
        if store.sessions[video["session_id"]].collection_id == coll
    ]
    return _v2_answer(request, video_ids, body)


# -- streams ---------------------------------------------------------------------


def _clip(base_url: str, video_id: str, start: float, end: float) -> dict[str, str]:
    return {
        "stream_url": f"{base_url}/_media/video/{video_id}/{start:g}-{end:g}/stream.m3u8",
        "player_url": f"{base_url}/_media/player/video/{video_id}?t={start:g}",
    }


def _timeline(raw: Any, length: float) -> list[tuple[float, float]]:
    """``[[start, end], ...]`` in seconds from the video's start; an end past the video's
    length is cut to it."""
    if not isinstance(raw, list) or not raw:
        raise bad_request(f"'timeline' must be a non-empty list of [start, end], got {raw!r}")
    spans = []
    for i, span in enumerate(raw):
        ok_shape = isinstance(span, list) and len(span) == 2
        if not ok_shape or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
            for t in span
        ):
            raise bad_request(f"timeline[{i}] must be [start, end] in seconds, got {span!r}")
        start, end = float(span[0]), float(span[1])
        if start < 0 or end <= start:
            raise bad_request(f"timeline[{i}] must have 0 <= start < end, got {span!r}")
        if start >= length:
            raise bad_request(
                f"timeline[{i}] starts at {start:g} s, past the end of the {length:g} s video"
            )
        spans.append((start, min(end, length)))
    return spans


@routes.add("POST", "video/{vid}/stream")
@api()
async def generate_stream(request: web.Request) -> web.Response:
    """``video.generate_stream(timeline)`` (and ``shot.generate_stream()``)."""
    video_id, video = _asset(request, "video")
    body = await json_body(request)
    opt_number(body, "length", minimum=0)
    base = core_of(request).base_url
    if body.get("timeline") is None:
        return ok(assets.urls(base, video_id))
    spans = _timeline(body["timeline"], float(video["duration"]))
    clip = _clip(base, video_id, spans[0][0], spans[0][1])
    if len(spans) > 1:
        joined = "_".join(f"{a:g}-{b:g}" for a, b in spans)
        clip["stream_url"] = f"{base}/_media/video/{video_id}/{joined}/stream.m3u8"
    return ok(clip)


# -- audio assets ----------------------------------------------------------------


@routes.add("GET", "audio")
@api()
async def list_audios(request: web.Request) -> web.Response:
    _collection_param(request)
    core = core_of(request)
    return ok({"audios": [audio_dict(core, i, a) for i, a in core.store.audios.items()]})


@routes.add("GET", "audio/{aid}")
@api()
async def get_audio(request: web.Request) -> web.Response:
    audio_id, audio = _asset(request, "audio")
    return ok(audio_dict(core_of(request), audio_id, audio))


@routes.add("DELETE", "audio/{aid}")
@api()
async def delete_audio(request: web.Request) -> web.Response:
    audio_id, _ = _asset(request, "audio")
    del core_of(request).store.audios[audio_id]
    return ok(None, message="audio deleted")


@routes.add("GET", "audio/{aid}/transcription")
@api()
async def get_audio_transcript(request: web.Request) -> web.Response:
    return await _get_transcript(request, "audio")


@routes.add("POST", "audio/{aid}/transcription")
@api()
async def generate_audio_transcript(request: web.Request) -> web.Response:
    return await _generate_transcript(request, "audio")
