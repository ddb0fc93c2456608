"""Route registration helper: every path answers with and without a trailing slash."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Routes:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, Handler]] = []

    def add(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.entries.append((method, path, handler))
            return handler

        return register

    def install(self, app: web.Application) -> None:
        # Plain paths first so that e.g. `rtstream/event` wins over `rtstream/{id}`.
        ordered = sorted(self.entries, key=lambda e: "{" in e[1])
        for method, path, handler in ordered:
            path = "/" + path.strip("/")
            app.router.add_route(method, path, handler)
            app.router.add_route(method, path + "/", handler)
