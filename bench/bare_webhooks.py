"""The bare baseline of bench/webhooks.py: an ASGI endpoint that reads the body and answers 200.

Served by the very server Copilot's ``manage.py serve`` runs (``copilot.runtime.web_server``:
Daphne with Copilot's body limits, endpoint and options), so that the two figures differ only
in the application: no Django request, no middleware, no database, no broker. It answers the
JSON body Copilot answers a new delivery with, so the client reads the same bytes.

    .venv/bin/python bench/bare_webhooks.py --port 8124

bench/webhooks.py starts it beside Copilot's Daphne, in the same environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESPONSE_BODY = b'{"status": "accepted"}'
RESPONSE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(RESPONSE_BODY)).encode()),
]


async def application(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    # Read the whole body, as Django does before the view runs.
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": RESPONSE_HEADERS})
    await send({"type": "http.response.body", "body": RESPONSE_BODY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The server's body limits read Django's settings; nothing else of Django runs here.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot.settings")
    import django

    django.setup()
    from copilot.runtime import web_server

    web_server(application, args.host, args.port).run()


if __name__ == "__main__":
    main()
