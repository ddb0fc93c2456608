"""The bare baseline of bench/live.py: the live path with nothing of Copilot in it.

Two processes, started by bench/live.py beside Copilot's own, on the same emulator, the same
Redis channel layer (channels_redis, configured exactly as Copilot's: bench/live.py passes
Copilot's ``CHANNEL_LAYERS`` in ``BARE_CHANNEL_LAYERS``) and the same Daphne (the ``daphne``
package Copilot's ``manage.py serve`` runs, with the endpoint and WebSocket limits it uses):

``relay``  opens the emulator's event socket the way the SDK does (``connect_websocket``),
    prints its connection id (the bench starts the transcripts with it), and for each
    transcript event ``group_send``s a fragment to the group of that event's stream, from
    one lane per stream as Copilot's relay does (in order within a stream, streams side by
    side, none waiting for another's round trip to Redis). The fragment is pre-rendered
    once, padded to the size of Copilot's (``--fragment-bytes``); per event only its id,
    order, stream and text are put in with one ``%`` format (no template engine, no
    database, no model), so the viewers can time it exactly as they time Copilot's.
``serve``  Daphne serving one bare consumer: it joins its streams' groups
    (``/bare/?streams=a,b``) before accepting, and forwards each message's ``html`` as a
    text frame. What the viewer sends (the resume Copilot's viewers send too) is ignored:
    there is nothing to replay.

    .venv/bin/python bench/bare_live.py serve --port 8123
    .venv/bin/python bench/bare_live.py relay --emulator http://127.0.0.1:8765 --fragment-bytes 420

Both need ``BARE_CHANNEL_LAYERS`` (JSON). Nothing here imports Copilot's code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any
from urllib.parse import parse_qs

import django
from django.conf import settings

# Channels reads its layer from Django's settings; nothing else of Django is set up (no
# apps, no database).
settings.configure(CHANNEL_LAYERS=json.loads(os.environ.get("BARE_CHANNEL_LAYERS", "{}")))
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402

# The shape of Copilot's transcript line (templates/sessions_app/live.html#segment), so that
# the viewers parse both the same way; the padding comment makes it as long as Copilot's.
FRAGMENT = (
    '<li id="seg-%d" class="line%s" data-list="transcript" data-order="%d" data-seq="%d" '
    'data-stream="%d" hx-swap-oob="true">\n  <span class="offset">00:00</span>\n'
    '  <span class="speaker" data-stream="%d">Speaker</span>\n'
    '  <span class="text">%s</span>%s\n</li>'
)
INTERIM_TAG = '<span class="interim-tag"> (still speaking…)</span>'


def group_name(rtstream_id: str) -> str:
    return f"bare.{rtstream_id}"


class BareViewerConsumer(AsyncWebsocketConsumer):
    """Join the streams' groups, accept, forward."""

    joined: tuple[str, ...] = ()

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        streams = query.get("streams", [""])[0].split(",")
        self.joined = tuple(group_name(s) for s in streams if s)
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The viewer's resume: a bare relay keeps nothing to replay."""

    async def bare_fragment(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])


application = ProtocolTypeRouter({"websocket": BareViewerConsumer.as_asgi()})


def fragment_template(size: int) -> str:
    """``FRAGMENT`` padded so that a 5-word interim (the median event) is ``size`` bytes."""
    # A 5-word line of bench/emulator.py's words (about 30 characters), stream number 1.
    sample = FRAGMENT % (1, " interim", 1_700_000_000_000, 1, 1, 1, "x" * 30, "")
    sample += INTERIM_TAG
    pad = size - len(sample.encode()) - len("<!---->")
    return FRAGMENT + ("<!--" + "p" * pad + "-->" if pad > 0 else "")


async def relay(emulator: str, api_key: str, size: int) -> None:
    import videodb

    template = fragment_template(size)
    conn = videodb.connect(api_key=api_key, base_url=emulator)
    socket = conn.connect_websocket()
    await socket.connect()
    print(socket.connection_id, flush=True)  # the bench starts the transcripts with it
    layer = get_channel_layer()
    ids: dict[tuple[str, int], int] = {}
    streams: dict[str, int] = {}
    seq = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    lanes: dict[str, asyncio.Queue] = {}
    workers: set[asyncio.Task] = set()

    async def send(lane: asyncio.Queue) -> None:
        while True:
            group, html = await lane.get()
            await layer.group_send(group, {"type": "bare.fragment", "html": html})

    async def pump() -> None:
        nonlocal seq
        async for event in socket.receive():
            if event.get("channel") != "transcript":
                continue
            rtstream_id, data = event["rtstream_id"], event["data"]
            # Lines and streams are numbered, as Copilot's rows are (seg-<pk>, data-stream).
            stream = streams.setdefault(rtstream_id, len(streams) + 1)
            key = (rtstream_id, data["start"])
            segment = ids.setdefault(key, len(ids) + 1)
            seq += 1
            final = data.get("is_final", False)
            html = template % (
                segment,
                "" if final else " interim",
                data["start"],
                seq,
                stream,
                stream,
                data["text"],
                "" if final else INTERIM_TAG,
            )
            # One lane per stream, as Copilot's relay has: a stream's fragments go in order,
            # and no stream waits for another's round trip to Redis.
            lane = lanes.get(rtstream_id)
            if lane is None:
                lane = lanes[rtstream_id] = asyncio.Queue()
                workers.add(asyncio.create_task(send(lane)))
            lane.put_nowait((group_name(rtstream_id), html))

    task = asyncio.create_task(pump())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for running in (task, stopped, *workers):
        running.cancel()
    await socket.close()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()


def serve(endpoint: str, max_message: int) -> None:
    from daphne.server import Server

    Server(
        application=application,
        endpoints=[endpoint],
        websocket_max_message_size=max_message,
        websocket_max_frame_size=max_message,
        application_close_timeout=10,
        verbosity=1,
    ).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="Daphne with the bare consumer")
    serving.add_argument("--port", type=int, required=True)
    serving.add_argument("--endpoint", help="Daphne endpoint description (default: the port's)")
    serving.add_argument("--max-message", type=int, default=64 * 1024)
    relaying = commands.add_parser("relay", help="the emulator's socket to the groups")
    relaying.add_argument("--emulator", required=True, help="the emulator's base URL")
    relaying.add_argument("--api-key", default="emulator-dev-key")
    relaying.add_argument("--fragment-bytes", type=int, default=400)
    args = parser.parse_args()
    if "BARE_CHANNEL_LAYERS" not in os.environ:
        sys.exit("BARE_CHANNEL_LAYERS (Copilot's CHANNEL_LAYERS, as JSON) is not set")
    if args.command == "serve":
        serve(args.endpoint or f"tcp:port={args.port}:interface=127.0.0.1", args.max_message)
    else:
        asyncio.run(relay(args.emulator, args.api_key, args.fragment_bytes))


if __name__ == "__main__":
    main()
