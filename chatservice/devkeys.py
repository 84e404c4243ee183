"""The development RSA key pair under var/: created once, reused by `make run` and `mint_token`.

Production never reaches this module: config.py calls it only when DJANGO_DEBUG is on and no public
key is configured.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PRIVATE_KEY_NAME = "dev_jwt_private.pem"
PUBLIC_KEY_NAME = "dev_jwt_public.pem"
RSA_KEY_BITS = 2048


def generate_rsa_keypair() -> tuple[bytes, bytes]:
    """Return (private PEM, public PEM) of a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # Written beside the target and renamed, so a concurrent reader never sees half a key.
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def ensure_dev_keypair(var_dir: Path) -> tuple[Path, str]:
    """Return (private key path, public key PEM), creating the pair on first use."""
    private_path = var_dir / PRIVATE_KEY_NAME
    public_path = var_dir / PUBLIC_KEY_NAME
    if not (private_path.exists() and public_path.exists()):
        var_dir.mkdir(parents=True, exist_ok=True)
        # Two processes starting at once (daphne and manage.py) must not write halves of two pairs.
        with open(var_dir / "dev_jwt.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (private_path.exists() and public_path.exists()):
                private_pem, public_pem = generate_rsa_keypair()
                _write_new(public_path, public_pem, 0o644)
                _write_new(private_path, private_pem, 0o600)
    return private_path, public_path.read_text()


class NoDevelopmentKey(Exception):
    """A real JWT public key is configured: tokens come from the Auth Service, not from this machine."""


def mint_dev_token(*, user: str, role: str, ttl_s: int) -> str:
    """A token for `user` with `role`, signed with the development private key (`mint_token`, `seed_demo`).
    Issuer and audience are the configured ones, so the running service accepts it."""
    from datetime import UTC, datetime, timedelta

    import jwt
    from django.conf import settings

    private_key_path = settings.CHAT["DEV_PRIVATE_KEY_PATH"]
    if private_key_path is None:
        raise NoDevelopmentKey
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user, "role": role, "iat": now, "exp": now + timedelta(seconds=ttl_s)}
    if settings.CHAT["JWT_ISSUER"]:
        claims["iss"] = settings.CHAT["JWT_ISSUER"]
    if settings.CHAT["JWT_AUDIENCE"]:
        claims["aud"] = settings.CHAT["JWT_AUDIENCE"]
    return jwt.encode(claims, private_key_path.read_text(), algorithm="RS256")
