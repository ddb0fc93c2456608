"""ASGI entry point: HTTP goes to Django, WebSockets to Channels consumers.

Django's ASGI application is built before anything imports models, so the app registry is
ready when the consumer routes load; its handler runs the middleware chain and the view in
one thread hop (copilot/handler.py). VideoDB's webhooks skip that handler: they are served
by copilot/webhook_route.py, with the part of the middleware that serves a machine.
WebSockets pass the Origin check (a page on another site cannot open a socket with our
cookies), then the session/auth middleware. Request bodies are bounded before this
application sees them (copilot/bodylimit.py).
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot.settings")
# What django.core.asgi.get_asgi_application does, with the handler that enters the
# middleware chain once per request instead of once per middleware (copilot/handler.py).
django.setup(set_prefix=False)

from copilot.handler import SyncChainASGIHandler  # noqa: E402

django_asgi_app = SyncChainASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from copilot.routing import websocket_urlpatterns  # noqa: E402
from copilot.webhook_route import WebhookRoute  # noqa: E402
from sessions_app.consumers import NoSuchRouteConsumer  # noqa: E402

# Any other path is refused cleanly (4404) instead of raising in the router.
no_route = re_path(r"", NoSuchRouteConsumer.as_asgi())

application = ProtocolTypeRouter(
    {
        # VideoDB's webhooks past Django's request handler; every other request through it.
        "http": WebhookRoute(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, no_route]))
        ),
    }
)
