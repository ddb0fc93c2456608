"""Presigned uploads: where the SDK puts a prompt too large to send inline.

SDK 0.5.1 `generate_text` uploads a prompt whose JSON body would exceed 250 KB: it asks for
`GET collection/{id}/upload_url`, POSTs the text as a multipart file to that URL (no API key:
the URL is the credential) and sends the URL as `prompt_url`. The emulator keeps such
uploads in memory, bounded in number, size and age.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

MAX_UPLOAD_BYTES = 1 << 20  # also the largest prompt generate_text accepts
MAX_UPLOADS = 32
UPLOAD_TTL = 3600.0
PATH_PREFIX = "/_upload/"


@dataclass
class Upload:
    token: str
    name: str
    expires_at: float
    content: bytes | None = None


class Uploads:
    def __init__(self) -> None:
        self._items: OrderedDict[str, Upload] = OrderedDict()

    def mint(self, name: str) -> Upload:
        """A new upload slot; the oldest slot goes when there are too many."""
        self._purge()
        while len(self._items) >= MAX_UPLOADS:
            self._items.popitem(last=False)
        upload = Upload("upl-" + secrets.token_urlsafe(24), name, time.time() + UPLOAD_TTL)
        self._items[upload.token] = upload
        return upload

    def get(self, token: str) -> Upload | None:
        self._purge()
        return self._items.get(token)

    def token_of(self, url: str) -> str | None:
        """The token in an upload URL this emulator minted (any host: it may sit behind a proxy)."""
        _, sep, tail = url.partition(PATH_PREFIX)
        return tail.strip("/") if sep and tail.strip("/") else None

    def _purge(self) -> None:
        now = time.time()
        for token in [t for t, u in self._items.items() if u.expires_at < now]:
            del self._items[token]
