from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Offline notifications"

    def ready(self) -> None:
        from notifications import emails, services  # noqa: F401 - register their job kinds
