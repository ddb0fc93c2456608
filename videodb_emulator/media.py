"""Placeholder media: HLS playlists and player pages for stream/player URLs.

The emulator has no real video; these answer 200 so links in the dashboard work, and the
player page states the position it was asked to start at, so a jump-to-moment link can be
seen (and tested) to carry its time.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime

from aiohttp import web

from .api_capture import core_of
from .errors import ApiError, bad_request
from .validation import to_epoch_ms

PLAYLIST = (
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
    "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-ENDLIST\n"
)
# The page is meant to be framed by the app (jump-to-moment players), so no X-Frame-Options
# and `frame-ancestors *`; nothing on it needs scripts or other origins, so everything else
# is shut off.
PLAYER_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors *"
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant datetime shows


def _known(request: web.Request, kind: str, ident: str) -> None:
    store = core_of(request).store
    found = ident in (store.rtstreams if kind == "rtstream" else store.videos)
    if not found:
        raise ApiError(404, f"{kind} '{ident}' not found")


def _query_float(request: web.Request, key: str) -> float | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise bad_request(f"query parameter '{key}' must be a number >= 0, got {raw!r}")
    return value


def _epoch_ms(request: web.Request, key: str) -> float | None:
    value = _query_float(request, key)
    if value is None:
        return None
    epoch_ms = to_epoch_ms(value)
    if epoch_ms > MAX_EPOCH_MS:
        raise bad_request(f"query parameter '{key}' is past the year 9999")
    return epoch_ms


def _iso(epoch_ms: float) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _position(request: web.Request, kind: str, ident: str) -> list[str]:
    """Sentences describing where playback starts (and ends), from the query string:
    ``?t=<seconds>`` into a video; ``?start=&end=`` (epoch ms, or seconds) of a stream clip."""
    if kind == "video":
        length = float(core_of(request).store.videos[ident]["duration"])
        t = _query_float(request, "t")
        if t is None:
            return [f"Starts at the beginning of the {length:.1f} s video."]
        past = " (past the end of the video)" if t > length else ""
        return [f"Video length {length:.1f} s; starts at {t:.1f} s{past}."]
    start_ms, end_ms = _epoch_ms(request, "start"), _epoch_ms(request, "end")
    lines = []
    if start_ms is not None:
        lines.append(f"Clip starts at {_iso(start_ms)} (epoch ms {start_ms:.0f}).")
    if end_ms is not None:
        lines.append(f"Clip ends at {_iso(end_ms)} (epoch ms {end_ms:.0f}).")
    if start_ms is not None and end_ms is not None:
        if end_ms <= start_ms:
            raise bad_request("'end' must be after 'start'")
        lines.append(f"Clip length {(end_ms - start_ms) / 1000:.1f} s.")
    return lines or ["Live: no start time given."]


async def playlist(request: web.Request) -> web.Response:
    _known(request, request.match_info["kind"], request.match_info["ident"])
    return web.Response(text=PLAYLIST, content_type="application/vnd.apple.mpegurl")


async def player(request: web.Request) -> web.Response:
    kind, ident = request.match_info["kind"], request.match_info["ident"]
    _known(request, kind, ident)
    title = html.escape(f"VideoDB emulator player: {kind} {ident}")
    position = "".join(
        f"<p class='position'>{html.escape(line)}</p>" for line in _position(request, kind, ident)
    )
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1>{position}<p>The local VideoDB emulator has no real media; "
        f"this page stands in for the player.</p></body></html>"
    )
    return web.Response(
        text=body, content_type="text/html", headers={"Content-Security-Policy": PLAYER_CSP}
    )


def install(app: web.Application) -> None:
    app.router.add_get("/_media/{kind:rtstream|video}/{ident}/{name:[^/]+\\.m3u8}", playlist)
    app.router.add_get(
        "/_media/{kind:rtstream|video}/{ident}/{range}/{name:[^/]+\\.m3u8}", playlist
    )
    app.router.add_get("/_media/player/{kind:rtstream|video}/{ident}", player)
