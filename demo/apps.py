from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`make demo`: a staff account, donors and conversations in every state (demo.seed), and a DEBUG-only
    link that opens the console already logged in (demo.login). No models of its own."""

    name = "demo"
    verbose_name = "Demo"
