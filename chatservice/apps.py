from django.apps import AppConfig


class ChatServiceConfig(AppConfig):
    """The project package is also an app so it can carry project-wide management commands."""

    name = "chatservice"
    verbose_name = "Chat service"

    def ready(self) -> None:
        from chatservice import login_lockout, schema  # noqa: F401 - signal receivers, OpenAPI extensions
