"""Admin login lockouts (django-axes) reach the logs, with what an operator needs to lift one early:
`manage.py axes_reset_ip_username <ip_address> <username>` (README, "Admin login lockout")."""

from __future__ import annotations

import logging
from typing import Any

from axes.signals import user_locked_out
from django.dispatch import receiver

logger = logging.getLogger(__name__)


@receiver(user_locked_out)
def log_lockout(
    sender: Any, request: Any, username: str | None = None, ip_address: str | None = None, **kwargs: Any
) -> None:
    logger.warning("admin login locked out", extra={"username": username, "ip_address": ip_address})
