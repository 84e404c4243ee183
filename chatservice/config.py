"""Every environment variable the service reads, parsed and validated in one place.

`load_config(environ)` is pure (no Django import, no I/O except reading key files and, in development,
creating the local key pair), so tests can build a Config for any environment and assert on it.
A bad or missing value raises `ConfigError` with a one-line explanation; settings.py turns that into
a refusal to start.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEFAULT_PORT = 3006
# PyJWT names of asymmetric algorithms only: a symmetric one would let anyone holding the *public*
# key mint tokens (algorithm confusion), so it is refused at start-up rather than at verification.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
# How long a SQLite writer waits for the lock before failing; longer than any single write we make.
SQLITE_BUSY_TIMEOUT_S = 20
# WebSocket frame rate limits (token buckets: tokens per second, bucket size). A person types a few
# messages a second at most; bursts cover pastes and reconnect flushes. Typing refreshes are cheap
# but fan out to every socket of the conversation, so they get their own, smaller bucket.
WS_RATES = {
    "WS_MESSAGE_RATE": 10,
    "WS_MESSAGE_BURST": 20,
    "WS_USER_RATE": 20,
    "WS_USER_BURST": 40,
    "WS_TYPING_RATE": 2,
    "WS_TYPING_BURST": 5,
}
# How WebSocket events cross workers when REDIS_URL is set; "pubsub" was measured faster (README).
CHANNEL_LAYERS = frozenset({"pubsub", "core"})
# Threads for the WebSocket consumers' database work per worker (0: asgiref's one shared thread), and
# how often each worker checks its sockets for messages whose event was lost (seconds).
WS_TUNING = {"WS_DB_THREADS": 8, "WS_GAP_SWEEP_S": 10}
# Threads per worker that run HTTP requests, each keeping its database connection: (default, min, max).
# A connection per request (Django's way under ASGI, a new thread each time) cost more than the staff
# list's queries (README, "REST latency"); 8 requests at once per worker, the rest wait their turn.
HTTP_DB_THREADS = (8, 1, 256)
# Background jobs (jobs/): who runs them, and their timings as (default, minimum, maximum).
JOBS_RUNNERS = frozenset({"embedded", "celery"})
JOB_TIMINGS = {
    # The first retry waits about this long, doubling per attempt (jitter in the upper half).
    "JOB_RETRY_BASE_S": (30.0, 0.01, 3600.0),
    # How long a runner holds a job it took; one that dies lets it lapse and the sweep hands the job out
    # again. Longer than any handler may take (a webhook's 10 s timeout, an SMTP exchange), with room.
    "JOB_LEASE_S": (300.0, 1.0, 86400.0),
    # How often due jobs nobody picked up are handed out (also retries and delayed jobs).
    "JOB_SWEEP_S": (5.0, 0.1, 3600.0),
    # /health reports the job queue as late when its oldest due job waits longer than this.
    "JOB_LATE_AFTER_S": (120.0, 1.0, 86400.0),
    # How often the idle-conversation schedules run, and agents' auto-away is applied.
    "TRANSITION_EVERY_S": (3600.0, 1.0, 7 * 86400.0),
    "AGENT_AWAY_CHECK_S": (60.0, 0.0, 86400.0),
}
# Days without activity before a schedule closes ACTIVE / archives CLOSED conversations; 0 turns it off.
TRANSITION_DAYS = {"CLOSE_INACTIVE_DAYS": (30, 0, 3650), "ARCHIVE_CLOSED_DAYS": (90, 0, 3650)}
# Bounds per socket and per user, as (default, minimum, maximum). Unsent outbound data per socket: a reader
# that falls this far behind is closed (4008) and resumes with lastMessageId; 1 MiB holds 100 full-size
# messages or thousands of ordinary ones. Sockets per user across workers: a person's tabs and devices,
# not a script's thousands (4429).
WS_LIMITS = {
    "WS_MAX_BUFFERED_BYTES": (1024 * 1024, 64 * 1024, 64 * 1024 * 1024),
    "WS_MAX_BUFFERED_FRAMES": (1000, 10, 100_000),
    "WS_MAX_SOCKETS_PER_USER": (20, 1, 10_000),
}
# Seconds, as (default, minimum, maximum). Presence grace: a user whose last socket closes is announced as
# gone only if no socket of theirs opens again within it (a reload or a network blip announces nothing).
# Slow-close grace: how long a socket closed for being too slow may take to read its close frame before
# the connection is dropped; meanwhile it holds at most the transport's buffer (64 KiB).
WS_DELAYS = {
    "WS_PRESENCE_GRACE_S": (5.0, 0.0, 300.0),
    "WS_SLOW_CLOSE_GRACE_S": (10.0, 1.0, 300.0),
}
# The support desk. Auto-assignment strategies (desk.assignment): fewest open conversations first
# ("balanced", ties round-robin), strict rotation ("round_robin"), or none ("off").
AUTO_ASSIGN_MODES = frozenset({"balanced", "round_robin", "off"})
# An ONLINE agent with no staff socket open for this long becomes AWAY, as (default, minimum, maximum)
# seconds: a closed laptop must not keep receiving conversations.
AGENT_AWAY_AFTER_S = (300.0, 5.0, 24 * 3600.0)
# The first-response target drawn on the reports page, as (default, minimum, maximum) seconds.
REPORT_SLA_S = (3600, 1, 30 * 86400)
# Offline notifications, as (default, minimum, maximum) seconds: the wait before an unread reply is
# notified (time to read it live, or come back), and the least time between two notifications about one
# conversation to one person (a busy conversation is not an inbox flood).
NOTIFY_TIMINGS = {"NOTIFY_DELAY_S": (120.0, 0.0, 86400.0), "NOTIFY_MIN_INTERVAL_S": (900.0, 0.0, 7 * 86400.0)}
# The conversation's id in CHAT_DONOR_URL_TEMPLATE.
DONOR_URL_PLACEHOLDER = "{conversationId}"
SMTP_TIMEOUT_S = 10  # per SMTP command: a stuck mail server holds a job thread no longer than this
# Attachments (attachments/): what a donor may upload, where it goes, and how long a signed link lasts.
# At most 100 MiB: an accepted upload is read into memory once for its checks, and clamd must be told to take
# as much (its StreamMaxLength, 25 MB by default) or every larger upload is refused as a scanner failure.
ATTACHMENT_MAX_BYTES = (10 * 1024 * 1024, 1024, 100 * 1024 * 1024)
# What this service can recognise by content and serve safely; CHAT_ATTACHMENT_TYPES picks among them.
ATTACHMENT_SUPPORTED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf", "text/plain")
ATTACHMENT_STORAGES = frozenset({"filesystem", "s3"})
# A signed download link lasts this long: long enough to render a page and click, short enough that a
# link copied out of a page is soon worthless.
ATTACHMENT_LINK_TTL_S = (300.0, 10.0, 3600.0)
# Decoded pixels an image may have: 24 MP is a modern phone photo; decoded as RGBA that is 96 MB, the most one
# upload may hold in memory (two at a time per worker, attachments.images).
ATTACHMENT_MAX_PIXELS = (24_000_000, 10_000, 200_000_000)
# Message features (issue 15). What CHAT_REDACT may name: card numbers (Luhn) and IBANs (mod 97).
REDACTION_KINDS = ("card", "iban")
# A sender may edit their message this long after sending, as (default, minimum, maximum) seconds: long
# enough to fix a typo noticed after the answer came, short enough that history stays history.
EDIT_WINDOW_S = (900.0, 0.0, 7 * 86400.0)
# Reactions anyone may add (CHAT_REACTIONS, comma-separated): a small fixed set keeps the picker simple and
# every reaction renderable without an emoji font negotiation.
DEFAULT_REACTIONS = ("\U0001f44d", "\u2764\ufe0f", "\U0001f602", "\U0001f62e", "\U0001f622", "\U0001f64f")
MAX_REACTIONS = 24  # the picker's size; also bounds a message's reaction summary
MAX_REACTION_LENGTH = 16  # characters of one emoji (a ZWJ family sequence is up to 11)
# Archived conversations older than this many days are purged (CHAT_RETENTION_DAYS; unset or 0: kept forever).
RETENTION_DAYS = (0, 0, 36500)
# Message search (search/): the language words are indexed in on PostgreSQL (a text search configuration:
# 'simple' keeps every word as written, any language; 'english' stems and drops English stop words) and on
# MongoDB (the text index's default_language; 'simple' is its "none"). SQLite's index has no language.
DEFAULT_SEARCH_LANGUAGE = "simple"
SEARCH_LANGUAGE_PATTERN = re.compile(r"^[a-z_]{1,63}$")
LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
# Request line plus headers Daphne reads before answering 431 (chatservice.header_limits): Twisted's own
# limit, kept; an oversized request costs the worker no more than this before it is refused.
HTTP_MAX_HEADER_BYTES = 16 * 1024
# Longest bearer token accepted, as (default, minimum, maximum) bytes, checked before any decoding. An
# RS256 token of a few claims is well under 1 KiB; the default leaves room for more claims or a larger
# key. The maximum leaves 4 KiB of HTTP_MAX_HEADER_BYTES for the request line and the other headers, so
# a token within the limit is answered by the application, never refused by the HTTP layer (431).
JWT_MAX_TOKEN_BYTES = (8192, 1024, HTTP_MAX_HEADER_BYTES - 4096)
# Shortest METRICS_TOKEN accepted: a scrape secret short enough to guess protects nothing.
MIN_METRICS_TOKEN_LENGTH = 16
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class ConfigError(Exception):
    """A configuration problem; its message is one line an operator can act on."""


# Where an OTLP/HTTP collector listens by default, and the path it takes traces on.
DEFAULT_OTLP_TRACES_URL = "http://localhost:4318/v1/traces"
OTLP_TRACES_PATH = "/v1/traces"


# Admin login lockout (django-axes), as (default, minimum, maximum): failed logins of one username from one
# address before it is locked out, and for how long. Five is generous for typos, too few for guessing.
LOGIN_FAILURE_LIMIT = (5, 1, 100)
LOGIN_COOLOFF_MINUTES = (15, 1, 24 * 60)
# HSTS lifetime accepted, seconds (two years, the preload lists' usual ceiling).
MAX_HSTS_SECONDS = 2 * 365 * 24 * 3600


@dataclass(frozen=True)
class HttpSecurity:
    # Origins whose pages may call /api/ with a bearer token from the browser (CORS); never with cookies.
    cors_allowed_origins: tuple[str, ...] = ()
    hsts_seconds: int = 0  # production behind TLS: 31536000 (README)
    hsts_include_subdomains: bool = False
    hsts_preload: bool = False
    ssl_redirect: bool = False  # production behind TLS: true (the probes /live, /health and /metrics stay plain)
    login_failure_limit: int = LOGIN_FAILURE_LIMIT[0]
    login_cooloff_minutes: int = LOGIN_COOLOFF_MINUTES[0]


def _http_security(environ: Mapping[str, str]) -> HttpSecurity:
    return HttpSecurity(
        cors_allowed_origins=parse_origins("CORS_ALLOWED_ORIGINS", environ.get("CORS_ALLOWED_ORIGINS", "")),
        hsts_seconds=_int(environ, "SECURE_HSTS_SECONDS", 0, minimum=0, maximum=MAX_HSTS_SECONDS),
        hsts_include_subdomains=_bool(environ, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False),
        hsts_preload=_bool(environ, "SECURE_HSTS_PRELOAD", False),
        ssl_redirect=_bool(environ, "SECURE_SSL_REDIRECT", False),
        login_failure_limit=_ranged(environ, "ADMIN_LOGIN_FAILURE_LIMIT", LOGIN_FAILURE_LIMIT),
        login_cooloff_minutes=_ranged(environ, "ADMIN_LOGIN_COOLOFF_MINUTES", LOGIN_COOLOFF_MINUTES),
    )


@dataclass(frozen=True)
class TracingConfig:
    enabled: bool
    endpoint: str  # the full traces URL the exporter posts to
    service_name: str


@dataclass(frozen=True)
class NotifyConfig:
    """Offline notifications (notifications/). `email_backend` is None when the service sends no email."""

    delay_s: float = NOTIFY_TIMINGS["NOTIFY_DELAY_S"][0]
    min_interval_s: float = NOTIFY_TIMINGS["NOTIFY_MIN_INTERVAL_S"][0]
    email_backend: str | None = None
    # Message text in the email (opt-in): an email already sent cannot be erased (README).
    email_previews: bool = False
    donor_url_template: str = f"http://localhost:{DEFAULT_PORT}/chat/#conversation={DONOR_URL_PLACEHOLDER}"
    public_url: str = f"http://localhost:{DEFAULT_PORT}"  # this service, as donors reach it (unsubscribe links)
    # Django's EMAIL_* settings, as read from the environment.
    email_settings: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class AttachmentConfig:
    """Uploads (attachments/). `s3` holds django-storages' S3 options when `storage` is "s3"."""

    max_bytes: int = ATTACHMENT_MAX_BYTES[0]
    allowed_types: tuple[str, ...] = ATTACHMENT_SUPPORTED_TYPES
    storage: str = "filesystem"
    directory: Path = VAR_DIR / "attachments"
    s3: dict[str, Any] = field(default_factory=dict, repr=False)
    # clamd's address (tcp://host:port or unix:///path); None: uploads are not scanned.
    clamav_url: str | None = None
    link_ttl_s: float = ATTACHMENT_LINK_TTL_S[0]
    max_pixels: int = ATTACHMENT_MAX_PIXELS[0]


@dataclass(frozen=True)
class MessageFeatures:
    """Edits, reactions, redaction and retention (messaging/)."""

    redact: tuple[str, ...] = REDACTION_KINDS
    edit_window_s: float = EDIT_WINDOW_S[0]
    reactions: tuple[str, ...] = DEFAULT_REACTIONS
    retention_days: int = RETENTION_DAYS[0]


@dataclass(frozen=True)
class Config:
    debug: bool
    secret_key: str
    allowed_hosts: list[str]
    port: int
    database: dict[str, Any]
    database_url_scheme: str
    redis_url: str | None
    channel_layer: str
    jwt_public_key: str
    jwt_algorithms: list[str]
    jwt_issuer: str | None
    jwt_audience: str | None
    # Only set when the development key pair is in use; mint_token refuses otherwise.
    dev_private_key_path: Path | None
    log_level: str
    max_message_length: int
    ws_rates: dict[str, float]
    ws_tuning: dict[str, int]
    ws_limits: dict[str, int]
    ws_delays: dict[str, float]
    # Origins (scheme://host[:port]) whose pages may open a WebSocket with a staff session cookie; empty:
    # the request's own scheme and port on any host of allowed_hosts (realtime.auth).
    staff_trusted_origins: tuple[str, ...]
    # Origins (scheme://host[:port]) of the pages that may embed the chat widget: the embed page's
    # frame-ancestors and the origins whose postMessage it accepts. Empty: the widget embeds nowhere.
    widget_allowed_origins: tuple[str, ...]
    # CORS, HSTS, SSL redirect, admin login lockout.
    http_security: HttpSecurity
    tracing: TracingConfig
    # The bearer token Prometheus presents at GET /metrics; None keeps /metrics a 404. Not in repr().
    metrics_token: str | None = field(repr=False)
    # Bearer tokens longer than this are refused (token_invalid) before they are decoded.
    jwt_max_token_bytes: int = JWT_MAX_TOKEN_BYTES[0]
    auto_assign: str = "balanced"
    agent_away_after_s: float = AGENT_AWAY_AFTER_S[0]
    report_sla_s: int = REPORT_SLA_S[0]
    http_db_threads: int = HTTP_DB_THREADS[0]
    jobs_runner: str = "embedded"
    job_settings: dict[str, Any] = field(default_factory=dict)
    # Webhook URLs may resolve to private, loopback or link-local addresses (tests; never in production).
    webhook_allow_private: bool = False
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    attachments: AttachmentConfig = field(default_factory=AttachmentConfig)
    messages: MessageFeatures = field(default_factory=MessageFeatures)
    search_language: str = DEFAULT_SEARCH_LANGUAGE


def _public_http_url(name: str, raw: str) -> str:
    parsed = urlsplit(raw)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname or parsed.query or parsed.fragment:
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL like https://chat.example.org")
    return raw.rstrip("/")


def _notify(env: Mapping[str, str], *, debug: bool, port: int) -> NotifyConfig:
    """Email goes through SMTP when EMAIL_HOST is set; in development without it, to files under var/mail/
    (`make run` shows what would be sent); in production without it, nowhere (the notification.pending
    webhook still fires). Links in emails need the public addresses, so production sending email needs them."""
    host = _optional(env, "EMAIL_HOST")
    wanted = _bool(env, "CHAT_NOTIFY_EMAIL", True)
    backend = None
    if wanted and host:
        backend = "django.core.mail.backends.smtp.EmailBackend"
    elif wanted and debug:
        backend = "django.core.mail.backends.filebased.EmailBackend"
    public_raw, template = _optional(env, "CHAT_PUBLIC_URL"), _optional(env, "CHAT_DONOR_URL_TEMPLATE")
    if backend and host and not debug and not (public_raw and template):
        raise ConfigError(
            "CHAT_PUBLIC_URL and CHAT_DONOR_URL_TEMPLATE are required to send notification emails in production "
            "(their links), or set CHAT_NOTIFY_EMAIL=false"
        )
    public_url = _public_http_url("CHAT_PUBLIC_URL", public_raw) if public_raw else f"http://localhost:{port}"
    if template is None:
        template = f"{public_url}/chat/#conversation={DONOR_URL_PLACEHOLDER}"
    if DONOR_URL_PLACEHOLDER not in template or urlsplit(template).scheme not in {"http", "https"}:
        raise ConfigError(f"CHAT_DONOR_URL_TEMPLATE must be an http(s) URL containing {DONOR_URL_PLACEHOLDER}")
    use_tls, use_ssl = _bool(env, "EMAIL_USE_TLS", False), _bool(env, "EMAIL_USE_SSL", False)
    if use_tls and use_ssl:
        raise ConfigError("set EMAIL_USE_TLS or EMAIL_USE_SSL, not both")
    email_settings = {
        "EMAIL_HOST": host or "localhost",
        "EMAIL_PORT": _int(env, "EMAIL_PORT", 465 if use_ssl else 587 if use_tls else 25, minimum=1, maximum=65535),
        "EMAIL_HOST_USER": env.get("EMAIL_HOST_USER", ""),
        "EMAIL_HOST_PASSWORD": env.get("EMAIL_HOST_PASSWORD", ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
        "EMAIL_TIMEOUT": SMTP_TIMEOUT_S,
        "DEFAULT_FROM_EMAIL": _optional(env, "DEFAULT_FROM_EMAIL") or "CareForAll support <support@localhost>",
        "EMAIL_FILE_PATH": str(VAR_DIR / "mail"),
    }
    return NotifyConfig(
        delay_s=_ranged(env, "CHAT_NOTIFY_DELAY_S", NOTIFY_TIMINGS["NOTIFY_DELAY_S"]),
        min_interval_s=_ranged(env, "CHAT_NOTIFY_MIN_INTERVAL_S", NOTIFY_TIMINGS["NOTIFY_MIN_INTERVAL_S"]),
        email_backend=backend,
        email_previews=_bool(env, "CHAT_NOTIFY_EMAIL_PREVIEW", False),
        donor_url_template=template,
        public_url=public_url,
        email_settings=email_settings,
    )


def _message_features(env: Mapping[str, str]) -> MessageFeatures:
    raw_redact = env.get("CHAT_REDACT", ",".join(REDACTION_KINDS)).strip().lower()
    redact = () if raw_redact in ("off", "") else tuple(k.strip() for k in raw_redact.split(",") if k.strip())
    unknown = [k for k in redact if k not in REDACTION_KINDS]
    if unknown:
        raise ConfigError(f"CHAT_REDACT names {', '.join(unknown)}; use off or any of {', '.join(REDACTION_KINDS)}")
    raw_reactions = env.get("CHAT_REACTIONS", "").strip()
    reactions = tuple(dict.fromkeys(r.strip() for r in raw_reactions.split(",") if r.strip())) or DEFAULT_REACTIONS
    if len(reactions) > MAX_REACTIONS:
        raise ConfigError(f"CHAT_REACTIONS names {len(reactions)} reactions; at most {MAX_REACTIONS}")
    bad = [r for r in reactions if len(r) > MAX_REACTION_LENGTH or any(c.isascii() for c in r)]
    if bad:
        raise ConfigError(f"CHAT_REACTIONS: {', '.join(bad)} is not an emoji")
    return MessageFeatures(
        redact=redact,
        edit_window_s=_ranged(env, "CHAT_EDIT_WINDOW_S", EDIT_WINDOW_S),
        reactions=reactions,
        retention_days=_ranged(env, "CHAT_RETENTION_DAYS", RETENTION_DAYS),
    )


def _clamav_url(raw: str) -> str:
    parsed = urlsplit(raw)
    if parsed.scheme == "tcp" and parsed.hostname and parsed.port:
        return raw
    if parsed.scheme == "unix" and parsed.path:
        return raw
    raise ConfigError(f"CLAMAV_URL={raw!r} is not tcp://host:port or unix:///path/to/clamd.sock")


def _attachments(env: Mapping[str, str]) -> AttachmentConfig:
    """Attachments go to the file system under var/ unless CHAT_ATTACHMENT_STORAGE=s3, which takes
    django-storages' own AWS_* variables (the bucket is required)."""
    raw_types = env.get("CHAT_ATTACHMENT_TYPES", "").strip()
    types = tuple(t.strip().lower() for t in raw_types.split(",") if t.strip()) or ATTACHMENT_SUPPORTED_TYPES
    unknown = [t for t in types if t not in ATTACHMENT_SUPPORTED_TYPES]
    if unknown:
        raise ConfigError(
            f"CHAT_ATTACHMENT_TYPES names {', '.join(unknown)}; supported: {', '.join(ATTACHMENT_SUPPORTED_TYPES)}"
        )
    storage = env.get("CHAT_ATTACHMENT_STORAGE", "filesystem").strip().lower() or "filesystem"
    if storage not in ATTACHMENT_STORAGES:
        raise ConfigError(f"CHAT_ATTACHMENT_STORAGE={storage!r} is not one of {', '.join(sorted(ATTACHMENT_STORAGES))}")
    # Read whatever the storage (compose sets them all, empty by default), used only for S3.
    s3_settings = {
        "bucket_name": _optional(env, "AWS_STORAGE_BUCKET_NAME"),
        "endpoint_url": _optional(env, "AWS_S3_ENDPOINT_URL"),
        "region_name": _optional(env, "AWS_S3_REGION_NAME"),
        "access_key": _optional(env, "AWS_ACCESS_KEY_ID"),
        "secret_key": _optional(env, "AWS_SECRET_ACCESS_KEY"),
    }
    s3: dict[str, Any] = {}
    if storage == "s3":
        if not s3_settings["bucket_name"]:
            raise ConfigError("CHAT_ATTACHMENT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME")
        s3 = {
            **{k: v for k, v in s3_settings.items() if v is not None},
            # Private objects: every download goes through this service's access check or its signed link.
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        }
    directory = Path(env.get("CHAT_ATTACHMENT_DIR", "").strip() or VAR_DIR / "attachments")
    clamav = _optional(env, "CLAMAV_URL")
    return AttachmentConfig(
        max_bytes=_ranged(env, "CHAT_ATTACHMENT_MAX_BYTES", ATTACHMENT_MAX_BYTES),
        allowed_types=types,
        storage=storage,
        directory=directory,
        s3=s3,
        clamav_url=_clamav_url(clamav) if clamav else None,
        link_ttl_s=_ranged(env, "CHAT_ATTACHMENT_LINK_TTL_S", ATTACHMENT_LINK_TTL_S),
        max_pixels=_ranged(env, "CHAT_ATTACHMENT_MAX_PIXELS", ATTACHMENT_MAX_PIXELS),
    )


def _search_language(env: Mapping[str, str]) -> str:
    """A name spelled into SQL and index definitions (search.backends): lower-case letters and underscores only.
    Whether PostgreSQL or MongoDB knows the language is for them to say, when the index is built."""
    language = env.get("CHAT_SEARCH_LANGUAGE", "").strip().lower() or DEFAULT_SEARCH_LANGUAGE
    if not SEARCH_LANGUAGE_PATTERN.match(language):
        raise ConfigError(
            f"CHAT_SEARCH_LANGUAGE={language!r} is not a language name like simple or english (letters and _ only)"
        )
    return language


def _jobs_runner(env: Mapping[str, str], redis_url: str | None) -> str:
    """Celery when the stack has Redis, else this process (CHAT_JOBS_RUNNER overrides either way)."""
    default = "celery" if redis_url else "embedded"
    runner = env.get("CHAT_JOBS_RUNNER", "").strip().lower() or default
    if runner not in JOBS_RUNNERS:
        raise ConfigError(f"CHAT_JOBS_RUNNER={runner!r} is not one of {', '.join(sorted(JOBS_RUNNERS))}")
    if runner == "celery" and not redis_url:
        raise ConfigError("CHAT_JOBS_RUNNER=celery needs REDIS_URL (Celery's broker)")
    return runner


def _http_url(name: str, raw: str) -> str:
    parsed = urlsplit(raw)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    if parsed.query or parsed.fragment:
        raise ConfigError(f"{name} must not carry a query string or fragment")
    return raw


def otlp_traces_url(raw: str | None) -> str:
    """The seed gives OTEL_EXPORTER_OTLP_ENDPOINT as the full `/v1/traces` URL; the OpenTelemetry
    standard gives the collector's base URL, to which the traces path is appended. Both are accepted."""
    if raw is None:
        return DEFAULT_OTLP_TRACES_URL
    parsed = urlsplit(_http_url("OTEL_EXPORTER_OTLP_ENDPOINT", raw))
    path = parsed.path.rstrip("/")
    if not path.endswith(OTLP_TRACES_PATH):
        path += OTLP_TRACES_PATH
    return urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


def _tracing(environ: Mapping[str, str]) -> TracingConfig:
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, the standard's signal-specific form, is a full URL and wins.
    explicit = _optional(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if explicit is not None:
        endpoint = _http_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", explicit)
    else:
        endpoint = otlp_traces_url(_optional(environ, "OTEL_EXPORTER_OTLP_ENDPOINT"))
    return TracingConfig(
        enabled=_bool(environ, "OTEL_TRACES_ENABLED", False),
        endpoint=endpoint,
        service_name=_optional(environ, "OTEL_SERVICE_NAME") or "chat-service",
    )


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true/false)")


def _number(
    environ: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float, kind: type = int
) -> Any:
    """`name` as an int (or `kind`) within minimum..maximum; unset or empty: `default`."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not minimum <= value <= maximum:  # NaN fails this too
        shown = str if kind is int else "{:g}".format
        raise ConfigError(f"{name}={raw.strip()} is out of range ({shown(minimum)}..{shown(maximum)})")
    return value


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    return _number(environ, name, default, minimum=minimum, maximum=maximum)


def _ranged(environ: Mapping[str, str], name: str, spec: tuple[Any, Any, Any]) -> Any:
    """A setting whose (default, minimum, maximum) is `spec`; its type is the default's."""
    default, minimum, maximum = spec
    return _number(environ, name, default, minimum=minimum, maximum=maximum, kind=type(default))


def parse_origins(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list of origins, each `scheme://host[:port]` with nothing after it, normalised as
    browsers send them (lower-case, no default port)."""
    origins = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        parsed = urlsplit(item)
        try:
            port = parsed.port
        except ValueError:
            raise ConfigError(f"{name}: {item!r} has an invalid port") from None
        if parsed.scheme not in {"http", "https"} or not parsed.hostname or parsed.path not in {"", "/"}:
            raise ConfigError(f"{name}: {item!r} is not an origin like https://desk.example.org[:port]")
        if parsed.query or parsed.fragment or parsed.username or parsed.password:
            raise ConfigError(f"{name}: {item!r} is not an origin like https://desk.example.org[:port]")
        origins.append(origin_string(parsed.scheme, parsed.hostname, port))
    return tuple(dict.fromkeys(origins))  # in order, each once


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_string(scheme: str, host: str, port: int | None) -> str:
    """The serialised origin, as a browser's Origin header carries it: the port only when not the default."""
    scheme, host = scheme.lower(), host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literals are bracketed in origins
    shown = "" if port is None or port == DEFAULT_PORTS.get(scheme) else f":{port}"
    return f"{scheme}://{host}{shown}"


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def sqlite_database(path: Path | str) -> dict[str, Any]:
    """SQLite tuned for a chat workload: WAL lets readers run beside the writer, IMMEDIATE transactions
    take the write lock up front so a busy writer waits (busy timeout) instead of failing on upgrade."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            "timeout": SQLITE_BUSY_TIMEOUT_S,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": None},
    }


def parse_database_url(url: str | None) -> tuple[dict[str, Any], str]:
    """Return (Django DATABASES['default'], scheme)."""
    if url is None:
        return sqlite_database(VAR_DIR / "chat.sqlite3"), "sqlite"
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in {"mongodb", "mongodb+srv"}:
        return mongodb_database(url), "mongodb"
    if scheme == "sqlite":
        try:
            parsed = dj_database_url.parse(url)
        except ValueError as exc:
            raise ConfigError(f"DATABASE_URL is malformed: {exc}") from None
        name = parsed["NAME"]
        if not name or name == ":memory:":
            raise ConfigError("DATABASE_URL: sqlite needs a file path, e.g. sqlite:///var/chat.sqlite3")
        return sqlite_database(name), "sqlite"
    if scheme in {"postgres", "postgresql", "pgsql"}:
        try:
            parsed = dj_database_url.parse(url, conn_max_age=0)
        except ValueError as exc:
            raise ConfigError(f"DATABASE_URL is malformed: {exc}") from None
        if not parsed.get("NAME"):
            raise ConfigError("DATABASE_URL: postgres URL needs a database name, e.g. postgres://u:p@host/chat")
        parsed["ENGINE"] = "django.db.backends.postgresql"
        return parsed, "postgres"
    shown = scheme or url[:20]
    raise ConfigError(
        f"DATABASE_URL scheme {shown!r} is not supported (use sqlite:///PATH, postgres://… or mongodb://…)"
    )


def mongodb_database(url: str) -> dict[str, Any]:
    """django-mongodb-backend takes the connection string as HOST and the database as NAME.

    The URL is checked here, at start-up, with PyMongo's own parser, but without the DNS lookup that
    `mongodb+srv://` needs: that happens when the first query connects, like every other network error.
    """
    from pymongo.errors import PyMongoError
    from pymongo.uri_parser_shared import _validate_uri  # the public parse_uri resolves SRV records

    try:
        parsed = _validate_uri(url)
    except (PyMongoError, ValueError) as exc:
        raise ConfigError(f"DATABASE_URL is malformed: {exc}") from None
    if not parsed["database"]:
        raise ConfigError("DATABASE_URL: mongodb URL needs a database name, e.g. mongodb://host:27017/chat")
    return {"ENGINE": "django_mongodb_backend", "HOST": url, "NAME": parsed["database"]}


def _read_public_key(environ: Mapping[str, str]) -> str | None:
    inline = environ.get("JWT_PUBLIC_KEY", "").strip()
    path = _optional(environ, "JWT_PUBLIC_KEY_FILE")
    if inline and path:
        raise ConfigError("set JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE, not both")
    if path:
        try:
            inline = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"JWT_PUBLIC_KEY_FILE {path!r} cannot be read: {exc.strerror}") from None
    if not inline:
        return None
    # .env files and container platforms often carry the PEM on one line with literal "\n".
    pem = inline.replace("\\n", "\n").strip()
    if "-----BEGIN" not in pem or "PRIVATE KEY" in pem:
        raise ConfigError("JWT public key must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
    return pem


def _validate_public_key(pem: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        load_pem_public_key(pem.encode())
    except ValueError:
        raise ConfigError("JWT public key is not a valid PEM public key") from None


def _metrics_token(environ: Mapping[str, str]) -> str | None:
    """Unset or empty: metrics stay private (404). The value itself never appears in an error."""
    token = _optional(environ, "METRICS_TOKEN")
    if token is None:
        return None
    if len(token) < MIN_METRICS_TOKEN_LENGTH:
        raise ConfigError(
            f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 32`)"
        )
    if not all("!" <= char <= "~" for char in token):
        raise ConfigError("METRICS_TOKEN must be printable ASCII without spaces (it travels in an HTTP header)")
    return token


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    # Development is the default so `make run` works on a fresh machine; production sets
    # DJANGO_DEBUG=false and must then supply every secret (checked below).
    debug = _bool(env, "DJANGO_DEBUG", True)

    secret_key = env.get("DJANGO_SECRET_KEY", "").strip()
    if not secret_key:
        if not debug:
            raise ConfigError("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off")
        secret_key = "dev-insecure-secret-key-do-not-use-in-production"  # noqa: S105 - debug only

    hosts = [h.strip() for h in env.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    if not hosts:
        if not debug:
            raise ConfigError("ALLOWED_HOSTS is required when DJANGO_DEBUG is off (comma-separated host names)")
        hosts = ["localhost", "127.0.0.1", "[::1]"]

    database, scheme = parse_database_url(_optional(env, "DATABASE_URL"))

    redis_url = _optional(env, "REDIS_URL")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
    channel_layer = env.get("CHAT_CHANNEL_LAYER", "pubsub").strip().lower()
    auto_assign = env.get("CHAT_AUTO_ASSIGN", "balanced").strip().lower() or "balanced"
    if auto_assign not in AUTO_ASSIGN_MODES:
        raise ConfigError(f"CHAT_AUTO_ASSIGN={auto_assign!r} is not one of {', '.join(sorted(AUTO_ASSIGN_MODES))}")
    if channel_layer not in CHANNEL_LAYERS:
        raise ConfigError(f"CHAT_CHANNEL_LAYER={channel_layer!r} is not one of {', '.join(sorted(CHANNEL_LAYERS))}")

    algorithms = [a.strip() for a in env.get("JWT_ALGORITHMS", "RS256").split(",") if a.strip()]
    bad = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if not algorithms or bad:
        raise ConfigError(
            f"JWT_ALGORITHMS must list asymmetric algorithms only (e.g. RS256); refused: {', '.join(bad) or '(empty)'}"
        )

    public_key = _read_public_key(env)
    dev_private_key_path = None
    if public_key is None:
        if not debug:
            raise ConfigError("JWT_PUBLIC_KEY (or JWT_PUBLIC_KEY_FILE) is required when DJANGO_DEBUG is off")
        from chatservice.devkeys import ensure_dev_keypair

        dev_private_key_path, public_key = ensure_dev_keypair(VAR_DIR)
    _validate_public_key(public_key)

    log_level = env.get("LOG_LEVEL", "info").strip().upper() or "INFO"
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={log_level.lower()!r} is not one of debug, info, warning, error, critical")

    return Config(
        debug=debug,
        secret_key=secret_key,
        allowed_hosts=hosts,
        port=_int(env, "PORT", DEFAULT_PORT, minimum=1, maximum=65535),
        database=database,
        database_url_scheme=scheme,
        redis_url=redis_url,
        channel_layer=channel_layer,
        jwt_public_key=public_key,
        jwt_algorithms=algorithms,
        jwt_issuer=_optional(env, "JWT_ISSUER"),
        jwt_audience=_optional(env, "JWT_AUDIENCE"),
        jwt_max_token_bytes=_ranged(env, "JWT_MAX_TOKEN_BYTES", JWT_MAX_TOKEN_BYTES),
        dev_private_key_path=dev_private_key_path,
        log_level=log_level,
        max_message_length=_int(env, "CHAT_MAX_MESSAGE_LENGTH", 10_000, minimum=1, maximum=100_000),
        ws_tuning={
            name: _int(env, f"CHAT_{name}", default, minimum=0 if name == "WS_DB_THREADS" else 1, maximum=256)
            for name, default in WS_TUNING.items()
        },
        ws_limits={name: _ranged(env, f"CHAT_{name}", spec) for name, spec in WS_LIMITS.items()},
        ws_delays={name: _ranged(env, f"CHAT_{name}", spec) for name, spec in WS_DELAYS.items()},
        staff_trusted_origins=parse_origins("CHAT_STAFF_TRUSTED_ORIGINS", env.get("CHAT_STAFF_TRUSTED_ORIGINS", "")),
        widget_allowed_origins=parse_origins("CHAT_WIDGET_ALLOWED_ORIGINS", env.get("CHAT_WIDGET_ALLOWED_ORIGINS", "")),
        auto_assign=auto_assign,
        agent_away_after_s=_ranged(env, "CHAT_AGENT_AWAY_AFTER_S", AGENT_AWAY_AFTER_S),
        report_sla_s=_ranged(env, "CHAT_REPORT_SLA_S", REPORT_SLA_S),
        http_db_threads=_ranged(env, "CHAT_HTTP_DB_THREADS", HTTP_DB_THREADS),
        jobs_runner=_jobs_runner(env, redis_url),
        webhook_allow_private=_bool(env, "CHAT_WEBHOOK_ALLOW_PRIVATE", False),
        attachments=_attachments(env),
        messages=_message_features(env),
        search_language=_search_language(env),
        notify=_notify(env, debug=debug, port=_int(env, "PORT", DEFAULT_PORT, minimum=1, maximum=65535)),
        job_settings={
            name: _ranged(env, f"CHAT_{name}", spec) for name, spec in {**JOB_TIMINGS, **TRANSITION_DAYS}.items()
        },
        http_security=_http_security(env),
        tracing=_tracing(env),
        metrics_token=_metrics_token(env),
        ws_rates={
            name: _int(env, f"CHAT_{name}", default, minimum=1, maximum=10_000) for name, default in WS_RATES.items()
        },
    )
