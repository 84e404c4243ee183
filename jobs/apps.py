from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        # Every job kind and schedule registers itself on import: the worker and the web process must
        # know the same ones.
        from jobs import kinds  # noqa: F401
