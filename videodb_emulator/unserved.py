"""SDK 0.5.1 calls (capture, rtstream, video and collection modules) that the emulator
deliberately does not serve. They answer 404 naming the SDK call and the reason, rather than
a bare "no such endpoint"; the README lists them in the same words."""

from __future__ import annotations

import re

_NO_MODEL = "needs a model over real media; the emulator only replays scripted output"
_NO_MEDIA = "the emulator has no real media"
_V2 = "Search/Indexing V2 over indexes the emulator does not build"
_ONE_COLLECTION = "the emulator has one fixed collection, 'default'"

# (method, path with {placeholders}, SDK call, why not)
UNSERVED: list[tuple[str, str, str, str]] = [
    ("POST", "rtstream", "coll.connect_rtstream(url, ...)", f"RTSP/RTMP ingest: {_NO_MEDIA}"),
    ("POST", "rtstream/{id}/understand", "rts.understand(...)", _NO_MODEL),
    ("GET", "rtstream/{id}/understand", "rts.list_understanding()", _NO_MODEL),
    ("GET", "rtstream/{id}/understand/{u}", "rts.get_understanding(id)", _NO_MODEL),
    ("PATCH", "rtstream/{id}/understand/{u}/status", "understanding.start()/stop()", _NO_MODEL),
    ("GET", "rtstream/{id}/understand/{u}/records", "understanding.get_records()", _NO_MODEL),
    ("POST", "rtstream/{id}/indexes", "rts.index(source)", _V2),
    ("GET", "rtstream/{id}/indexes", "rts.list_indexes()", _V2),
    ("GET", "rtstream/{id}/indexes/{i}", "rts.get_index(id)", _V2),
    ("PATCH", "rtstream/{id}/indexes/{i}/status", "RTStreamIndex.start()/stop()", _V2),
    ("GET", "rtstream/{id}/indexes/{i}/records", "RTStreamIndex.get_records()", _V2),
    ("POST", "rtstream/{id}/indexes/{i}/alert", "RTStreamIndex.create_alert()", _V2),
    ("GET", "rtstream/{id}/indexes/{i}/alert", "RTStreamIndex.list_alerts()", _V2),
    ("PATCH", "rtstream/{id}/indexes/{i}/alert/{a}/status", "RTStreamIndex.enable_alert()", _V2),
    ("DELETE", "collection/{c}", "coll.delete()", _ONE_COLLECTION),
    ("PATCH", "collection/{c}", "coll.make_public()/make_private()", _ONE_COLLECTION),
    ("GET", "image", "coll.get_images()", _NO_MEDIA),
    ("GET", "image/{i}", "coll.get_image(id)", _NO_MEDIA),
    ("DELETE", "image/{i}", "coll.delete_image(id)", _NO_MEDIA),
    ("POST", "collection/{c}/generate/image", "coll.generate_image(...)", _NO_MODEL),
    ("POST", "collection/{c}/generate/audio", "coll.generate_music/voice/...()", _NO_MODEL),
    ("POST", "collection/{c}/generate/video", "coll.generate_video(...)", _NO_MODEL),
    ("POST", "collection/{c}/generate/video/dub", "coll.dub_video(...)", _NO_MODEL),
    ("POST", "collection/{c}/ask", "coll.ask(question)", _V2),
    ("POST", "collection/{c}/semantic-search", "coll.semantic_search(...)", _V2),
    ("POST", "collection/{c}/query", "coll.query(...)", _V2),
    ("POST", "collection/{c}/aggregate", "coll.aggregate(...)", _V2),
    ("POST", "collection/{c}/search/title", "coll.search_title(query)", _NO_MODEL),
    ("POST", "collection/{c}/meeting/record", "coll.record_meeting(...)", _NO_MEDIA),
    ("POST", "video/{v}/ask", "video.ask(question)", _V2),
    ("POST", "video/{v}/semantic-search", "video.semantic_search(...)", _V2),
    ("POST", "video/{v}/query", "video.query(...)", _V2),
    ("POST", "video/{v}/aggregate", "video.aggregate(...)", _V2),
    ("POST", "video/{v}/indexes", "video.index(source)", _V2),
    ("GET", "video/{v}/indexes", "video.list_indexes()/get_index()", _V2),
    ("GET", "video/{v}/indexes/{i}", "video.get_index(id)", _V2),
    ("DELETE", "video/{v}/indexes/{i}", "video.delete_index(id)", _V2),
    ("POST", "video/{v}/understand", "video.understand(...)", _NO_MODEL),
    ("GET", "video/{v}/understand", "video.list_understandings()", _NO_MODEL),
    ("GET", "video/{v}/understand/{u}", "video.get_understanding(id)", _NO_MODEL),
    ("DELETE", "video/{v}/understand/{u}", "video.delete_understanding(id)", _NO_MODEL),
    ("POST", "video/{v}/index/scene", "video.index_scenes/index_visuals/index_audio()", _NO_MODEL),
    ("DELETE", "video/{v}/index/scene/{i}", "video.delete_scene_index(id)", _NO_MODEL),
    ("GET", "video/{v}/index", "video.get_scenes() (deprecated)", _NO_MODEL),
    ("POST", "video/{v}/scenes", "video.extract_scenes(...)", _NO_MEDIA),
    ("GET", "video/{v}/scenes", "video.list_scene_collection()", _NO_MEDIA),
    ("GET", "video/{v}/scenes/{s}", "video.get_scene_collection(id)", _NO_MEDIA),
    ("DELETE", "video/{v}/scenes/{s}", "video.delete_scene_collection(id)", _NO_MEDIA),
    ("POST", "video/{v}/thumbnail", "video.generate_thumbnail(time)", _NO_MEDIA),
    ("GET", "video/{v}/thumbnail", "video.generate_thumbnail()", _NO_MEDIA),
    ("GET", "video/{v}/thumbnails", "video.get_thumbnails()", _NO_MEDIA),
    ("DELETE", "video/{v}/storage", "video.remove_storage()", _NO_MEDIA),
    ("POST", "collection/{c}/video/{v}/translate", "video.translate_transcript(...)", _NO_MODEL),
    ("POST", "video/{v}/workflow", "video.add_subtitle(style)", _NO_MEDIA),
    ("POST", "video/{v}/clip", "video.clip(prompt, ...)", _NO_MODEL),
    ("POST", "video/{v}/reframe", "video.reframe()/smart_vertical_reframe()", _NO_MEDIA),
    ("GET", "video/{v}/meeting", "video.get_meeting()", "no meeting bot recorded it"),
    ("POST", "compile", "video.insert_video()/SearchResult.compile()", _NO_MEDIA),
    ("POST", "download", "video.download()", _NO_MEDIA),
    ("POST", "audio/{a}/generate_url", "audio.generate_url()", _NO_MEDIA),
]

_PATTERNS = [
    (method, re.compile("^/" + re.sub(r"\{\w+\}", "[^/]+", path) + "/?$"), path, call, why)
    for method, path, call, why in UNSERVED
]


def explain(method: str, path: str) -> str | None:
    """The 404 message for an SDK call the emulator does not serve, or None."""
    for m, pattern, template, call, why in _PATTERNS:
        if m == method and pattern.match(path):
            return (
                f"{call} ({method} {template}) is not served by the VideoDB emulator: {why} "
                "(see the SDK table in videodb_emulator/README.md)"
            )
    return None
