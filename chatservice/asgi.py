"""ASGI entry point: `daphne chatservice.asgi:application`."""

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatservice.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

from chatservice.asgi_middleware import BodySizeLimitMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {"http": BodySizeLimitMiddleware(django_asgi_app, max_bytes=settings.MAX_REQUEST_BODY_BYTES)}
)
