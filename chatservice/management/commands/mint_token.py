"""Print a JWT signed with the development key pair, for trying the API locally."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatservice.authentication import USER_ID_MAX_LENGTH
from chatservice.devkeys import NoDevelopmentKey, mint_dev_token

DEFAULT_TTL_S = 24 * 3600
MAX_TTL_S = 30 * 24 * 3600


class Command(BaseCommand):
    help = (
        "Print a token for --user with --role, signed with the development key under var/. "
        "Refuses when a real JWT public key is configured (production)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="user id (the token's sub)")
        parser.add_argument("--role", default="USER", choices=["USER", "ADMIN", "SUPER_ADMIN"])
        parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help="seconds until expiry (default 86400)")

    def handle(self, *args: object, user: str, role: str, ttl: int, **options: object) -> None:
        if not user.strip() or len(user) > USER_ID_MAX_LENGTH:
            raise CommandError(f"--user must be 1..{USER_ID_MAX_LENGTH} characters")
        if not 1 <= ttl <= MAX_TTL_S:
            raise CommandError(f"--ttl must be between 1 and {MAX_TTL_S} seconds")
        try:
            token = mint_dev_token(user=user, role=role, ttl_s=ttl)
        except NoDevelopmentKey:
            raise CommandError(
                "mint_token only signs with the development key pair; a JWT public key is configured, "
                "so tokens must come from the Auth Service."
            ) from None
        self.stdout.write(token)
