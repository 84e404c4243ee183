"""Where a newcomer goes first: the pages of the service and the commands that let them in. One list,
shown by the landing page (/) and printed by `make run` and `make demo` (`manage.py open_next`), so the
page and the terminal cannot tell two stories."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

# The commands, exactly as typed from the repository's root (tests/test_landing.py runs them).
STAFF_LOGIN_COMMAND = ".venv/bin/python manage.py createsuperuser"
DEMO_COMMAND = "make demo"
TOKEN_COMMAND = "make token"  # noqa: S105 - a command, not a secret
TOKEN_MANAGE_COMMAND = ".venv/bin/python manage.py mint_token --user u1 --role USER"  # noqa: S105


@dataclass(frozen=True)
class Place:
    path: str
    title: str  # for the terminal (English: operators' text, like the log)
    label: object  # for the page (translated)
    audience: str  # "donors", "staff" or "developers": the landing page's groups


PLACES = (
    Place("/chat/", "Donor page", _("Donor chat page"), "donors"),
    Place("/admin/desk/", "Staff workspace", _("Agent workspace"), "staff"),
    Place("/admin/", "Staff console", _("Support console"), "staff"),
    Place("/admin/reports/", "Reports", _("Reports"), "staff"),
    Place("/api/docs/", "API docs", _("API documentation"), "developers"),
    Place("/health", "Health", _("Health check"), "developers"),
)


def open_next_lines(base_url: str) -> list[str]:
    """What `make run` prints before serving: every place, and how to get in where a login is needed."""
    base = base_url.rstrip("/")
    width = max(len(place.title) for place in PLACES)
    lines = [f"What to open next on {base}/ :", f"  {'Landing page'.ljust(width)}  {base}/"]
    for place in PLACES:
        line = f"  {place.title.ljust(width)}  {base}{place.path}"
        if place.path == "/chat/":
            line += f"#token=<token>   (token: {TOKEN_COMMAND}, or {TOKEN_MANAGE_COMMAND})"
        elif place.path == "/admin/desk/":
            line += f"   (staff login: {STAFF_LOGIN_COMMAND})"
        lines.append(line)
    lines.append(f"  {'Demo data'.ljust(width)}  {DEMO_COMMAND}   (seeds conversations, prints logged-in links)")
    return lines
