"""ASGI entry point: HTTP goes to Django, WebSockets to Channels consumers.

Django's ASGI application is built before anything imports models, so the app registry is
ready when the consumer routes load. WebSockets pass the Origin check (a page on another
site cannot open a socket with our cookies), then the session/auth middleware. Request bodies
are bounded before this application sees them (copilot/bodylimit.py).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from copilot.routing import websocket_urlpatterns  # noqa: E402
from sessions_app.consumers import NoSuchRouteConsumer  # noqa: E402

# Any other path is refused cleanly (4404) instead of raising in the router.
no_route = re_path(r"", NoSuchRouteConsumer.as_asgi())

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, no_route]))
        ),
    }
)
