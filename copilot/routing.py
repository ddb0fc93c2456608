"""WebSocket routes, wrapped by copilot/asgi.py in the Origin check and auth middleware."""

from __future__ import annotations

from django.urls import URLPattern, path

from sessions_app.consumers import LiveSessionConsumer

websocket_urlpatterns: list[URLPattern] = [
    # A session's live view (protocol and close codes: sessions_app/consumers.py).
    path("ws/sessions/<int:pk>/", LiveSessionConsumer.as_asgi(), name="ws-session-live"),
]
