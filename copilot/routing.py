"""WebSocket routes, wrapped by copilot/asgi.py in the Origin check and auth middleware.

The live issue adds the per-session socket (``/ws/sessions/<id>/``) here.
"""

from __future__ import annotations

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
