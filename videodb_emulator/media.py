"""Placeholder media: HLS playlists and player pages for stream/player URLs.

The emulator has no real video; these answer 200 so links in the dashboard work.
"""

from __future__ import annotations

import html

from aiohttp import web

from .api_capture import core_of
from .errors import ApiError

PLAYLIST = (
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
    "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-ENDLIST\n"
)


def _known(request: web.Request, kind: str, ident: str) -> None:
    store = core_of(request).store
    found = ident in (store.rtstreams if kind == "rtstream" else store.videos)
    if not found:
        raise ApiError(404, f"{kind} '{ident}' not found")


async def playlist(request: web.Request) -> web.Response:
    _known(request, request.match_info["kind"], request.match_info["ident"])
    return web.Response(text=PLAYLIST, content_type="application/vnd.apple.mpegurl")


async def player(request: web.Request) -> web.Response:
    kind, ident = request.match_info["kind"], request.match_info["ident"]
    _known(request, kind, ident)
    title = html.escape(f"VideoDB emulator player: {kind} {ident}")
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1><p>The local VideoDB emulator has no real media; this page "
        f"stands in for the player.</p></body></html>"
    )
    return web.Response(text=body, content_type="text/html")


def install(app: web.Application) -> None:
    app.router.add_get("/_media/{kind:rtstream|video}/{ident}/{name:[^/]+\\.m3u8}", playlist)
    app.router.add_get(
        "/_media/{kind:rtstream|video}/{ident}/{range}/{name:[^/]+\\.m3u8}", playlist
    )
    app.router.add_get("/_media/player/{kind:rtstream|video}/{ident}", player)
