"""ASGI entry point: `daphne chatservice.asgi:application`."""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatservice.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

from chatservice.asgi_middleware import BodySizeLimitMiddleware  # noqa: E402
from realtime.auth import QueryTokenAuthMiddleware  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BodySizeLimitMiddleware(django_asgi_app, max_bytes=settings.MAX_REQUEST_BODY_BYTES),
        # The token leaves the query string first, before anything below can log or trace the scope.
        "websocket": QueryTokenAuthMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
