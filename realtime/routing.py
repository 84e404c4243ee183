from django.urls import re_path

from realtime.consumers import ConversationConsumer
from realtime.inbox import InboxConsumer

websocket_urlpatterns = [
    re_path(r"^ws/inbox/?$", InboxConsumer.as_asgi()),
    re_path(r"^ws/conversations/(?P<conversation_id>[^/]+)/?$", ConversationConsumer.as_asgi()),
]
