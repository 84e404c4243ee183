"""`make demo`: seed the demo data (demo.seed) once, then print the pages and three links that open the
console already logged in, the donor page as a seeded donor, and the reports page.

The links carry credentials (a login link, a donor token): they are written to this terminal for the
operator, in development only, and never to a log.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from chatservice.config import VAR_DIR
from chatservice.devkeys import NoDevelopmentKey, mint_dev_token
from chatservice.guide import open_next_lines
from demo import seed
from demo.login import LOGIN_LINK_MAX_AGE_S, login_token

DEFAULT_BASE_URL = "http://127.0.0.1:3006"
PASSWORD_FILE = VAR_DIR / "demo-staff-password"
DONOR_TOKEN_TTL_S = 24 * 3600


def base_url_argument(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a base URL like {DEFAULT_BASE_URL}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise argparse.ArgumentTypeError(f"{value!r} is not a base URL like {DEFAULT_BASE_URL}")
    return value.rstrip("/")


class Command(BaseCommand):
    help = (
        "Development only: create a staff account, donors and conversations in every state (once), then print "
        "links that open the console logged in, the donor page as a donor, and the reports page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", type=base_url_argument, default=DEFAULT_BASE_URL)
        parser.add_argument(
            "--password-file", type=Path, default=PASSWORD_FILE, help="where the staff password is kept (0600)"
        )

    def handle(self, *args: object, base_url: str, password_file: Path, **options: object) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo runs in development only (DJANGO_DEBUG on): it writes made-up donors and "
                "conversations, and prints a login link."
            )
        if settings.CHAT["DEV_PRIVATE_KEY_PATH"] is None:
            raise CommandError("seed_demo needs the development key pair: unset JWT_PUBLIC_KEY")
        result = seed.seed(password_file=password_file)
        try:
            donor_token = mint_dev_token(user=result.link_donor, role="USER", ttl_s=DONOR_TOKEN_TTL_S)
        except NoDevelopmentKey:  # checked above; kept for a configuration changed in between
            raise CommandError("seed_demo needs the development key pair: unset JWT_PUBLIC_KEY") from None
        from django.contrib.auth import get_user_model

        staff = get_user_model().objects.get(username=result.staff_username)
        console = f"{base_url}{reverse('demo-login', kwargs={'token': login_token(staff)})}"
        fragment = urlencode({"token": donor_token, "conversation": result.link_conversation_id})
        donor = f"{base_url}{reverse('donor-chat')}#{fragment}"
        reports = f"{base_url}/admin/reports/"
        if result.created:
            summary = f"Demo data: created {result.conversations} conversations of {len(seed.DONORS)} donors."
        else:
            summary = f"Demo data already here ({result.conversations} conversations): nothing created."
        minutes = LOGIN_LINK_MAX_AGE_S // 60
        lines = [
            *open_next_lines(base_url),
            "",
            summary,
            f'Staff login: username "{result.staff_username}", password "{result.password}" (kept in {password_file})',
            "",
            f"Console, logged in (single use, {minutes} min): {console}",
            f"Donor page, as {result.link_donor}: {donor}",
            f"Reports: {reports}",
        ]
        self.stdout.write("\n".join(lines))
