"""Django settings. Every value that comes from the environment is parsed in chatservice.config."""

from __future__ import annotations

import logging
import sys

from chatservice.config import BASE_DIR, ConfigError, load_config
from chatservice.version import VERSION

try:
    CONFIG = load_config()
except ConfigError as exc:
    # One line, no traceback: this is an operator's mistake, not a bug.
    sys.stderr.write(f"chat-service: configuration error: {exc}\n")
    raise SystemExit(2) from None

DEBUG = CONFIG.debug
SECRET_KEY = CONFIG.secret_key
ALLOWED_HOSTS = CONFIG.allowed_hosts

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "chatservice",
    "conversations",
    "messaging",
    "realtime",
    "identity",
    "desk",
    "jobs",
    "webhooks",
    "csat",
    "notifications",
    "attachments",
    "exports",
    "retention",
    "audit",
    "search",
    "reports",
    "demo",
    "corsheaders",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything that can answer: a CORS preflight is answered here, before authentication.
    "corsheaders.middleware.CorsMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "chatservice.i18n.PageLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns an admin login lockout into its page
]
# The chain runs synchronously under ASGI too, in one thread hop per request: chatservice.asgi_handler.

ROOT_URLCONF = "chatservice.urls"
ASGI_APPLICATION = "chatservice.asgi.application"
WSGI_APPLICATION = "chatservice.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": CONFIG.database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
if CONFIG.database_url_scheme == "mongodb":
    # MongoDB is then the only database: admin users, sessions and the admin log live there too.
    from chatservice.mongo_apps import OBJECT_ID_AUTO_FIELD

    MONGO_APP_CONFIGS = {
        "django.contrib.admin": "chatservice.mongo_apps.MongoAdminConfig",
        "django.contrib.auth": "chatservice.mongo_apps.MongoAuthConfig",
        "django.contrib.contenttypes": "chatservice.mongo_apps.MongoContentTypesConfig",
        "axes": "chatservice.mongo_apps.MongoAxesConfig",
    }
    INSTALLED_APPS = [MONGO_APP_CONFIGS.get(app, app) for app in INSTALLED_APPS]
    DEFAULT_AUTO_FIELD = OBJECT_ID_AUTO_FIELD
    MIGRATION_MODULES = {label: f"mongo_migrations.{label}" for label in ("admin", "auth", "contenttypes", "axes")}

# redis-py's asyncio pool refuses (MaxConnectionsError) rather than waits past max_connections, 100 by
# default: 5,000 sockets connecting at once exceeded it. Publishing is also bounded in realtime.broadcast.
REDIS_LAYER_HOST = {"address": CONFIG.redis_url, "max_connections": 1000}
if CONFIG.redis_url and CONFIG.channel_layer == "pubsub":
    # One PUBLISH per event, fanned out inside each subscribed worker. Events published while a
    # worker's Redis connection is down are lost; sockets recover them from the database (gap sweep).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_LAYER_HOST]},
        }
    }
elif CONFIG.redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_LAYER_HOST],
                # A socket that falls this far behind is not reading; drops are counted and the socket
                # refills from the database, so a large buffer would only hold stale events in Redis.
                "capacity": 1000,
                # An event older than this is stale: the gap sweep (10 s) will have delivered it.
                "expiry": 30,
                # Live sockets re-join every 30 s (realtime.presence), so members of a killed worker
                # leave groups within 5 minutes instead of the default day.
                "group_expiry": 300,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The pages people read speak English or Bengali (chatservice.i18n); the API speaks English.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("bn", "বাংলা")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# WhiteNoise serves admin and API-docs assets from the installed apps even without `collectstatic`;
# production images run collectstatic into STATIC_ROOT for compressed, cacheable copies.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Pages staff use may also be served from these origins (a TLS terminator's public name, say): admin forms
# posted from them pass Django's CSRF origin check, and their staff-session sockets pass realtime.auth's.
CSRF_TRUSTED_ORIGINS = list(CONFIG.staff_trusted_origins)
# A CSRF refusal is JSON like every other API error, and Django's own page in admin (chatservice.views).
CSRF_FAILURE_VIEW = "chatservice.views.csrf_failure"

# ---- HTTP hardening (README, "Security headers, CORS and login lockout") -------------------------------
SECURITY = CONFIG.http_security

# CORS: the donation platform's pages call /api/ from the browser with a bearer token. Only the listed
# origins, only /api/, never cookies (a page on another origin must not act with a staff session).
CORS_ALLOWED_ORIGINS = list(SECURITY.cors_allowed_origins)
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = False
CORS_PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight answer

# CSP on every response (django-csp); pages with a stricter policy of their own (the donor page) keep it.
# No inline script anywhere; inline styles are allowed for the admin's and Swagger UI's own markup.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# TLS: set in production behind the TLS terminator (README). The probes stay plain HTTP: container health
# checks and Prometheus call the workers directly.
SECURE_HSTS_SECONDS = SECURITY.hsts_seconds
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURITY.hsts_include_subdomains
SECURE_HSTS_PRELOAD = SECURITY.hsts_preload
SECURE_SSL_REDIRECT = SECURITY.ssl_redirect
SECURE_REDIRECT_EXEMPT = [r"^live$", r"^health$", r"^metrics$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Admin login lockout (django-axes): a username from one address is locked out after N failures for a
# cool-off period. Attempts are counted in the cache (Redis across workers), so no database model is
# needed (which matters on MongoDB). The client address is Daphne's (--proxy-headers behind nginx), never
# a header a client sends.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = SECURITY.login_failure_limit
AXES_COOLOFF_TIME = SECURITY.login_cooloff_minutes / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_VERBOSE = False  # its own log lines at INFO would name usernames on every attempt
AXES_ENABLE_ADMIN = False  # its tables stay empty with the cache handler: no menu entries that show nothing
if CONFIG.redis_url:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CONFIG.redis_url}}
else:
    # The embedded default is one process (several workers need REDIS_URL for the channel layer anyway),
    # and an in-process cache counts every one of its login attempts; axes' check assumes several.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    SILENCED_SYSTEM_CHECKS = ["axes.W001"]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

# Request bodies larger than this are refused with 413 before Django reads them (chatservice.body_limits);
# attachment uploads have their own limit, CHAT_ATTACHMENT_MAX_BYTES.
MAX_REQUEST_BODY_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# Upload parts over this go to a temporary file rather than memory (Django's own default, stated).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_PERMISSIONS = 0o600

# Attachments go through Django's storage API: var/attachments by default, S3 with django-storages.
if CONFIG.attachments.storage == "s3":
    ATTACHMENT_STORAGE = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": CONFIG.attachments.s3}
else:
    ATTACHMENT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Never served by URL: every download goes through the access check (attachments.views).
        "OPTIONS": {
            "location": str(CONFIG.attachments.directory),
            "base_url": "/nowhere/",
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "attachments": ATTACHMENT_STORAGE,
}

CHAT = {
    "PORT": CONFIG.port,
    "JWT_PUBLIC_KEY": CONFIG.jwt_public_key,
    "JWT_ALGORITHMS": CONFIG.jwt_algorithms,
    "JWT_ISSUER": CONFIG.jwt_issuer,
    "JWT_AUDIENCE": CONFIG.jwt_audience,
    "JWT_MAX_TOKEN_BYTES": CONFIG.jwt_max_token_bytes,
    "DEV_PRIVATE_KEY_PATH": CONFIG.dev_private_key_path,
    "MAX_MESSAGE_LENGTH": CONFIG.max_message_length,
    "REDIS_URL": CONFIG.redis_url,
    # GET /metrics answers only a request bearing this token; None: 404 (chatservice.views.metrics).
    "METRICS_TOKEN": CONFIG.metrics_token,
    **CONFIG.ws_tuning,
    **CONFIG.ws_rates,
    **CONFIG.ws_limits,
    **CONFIG.ws_delays,
    "STAFF_TRUSTED_ORIGINS": CONFIG.staff_trusted_origins,
    "WIDGET_ALLOWED_ORIGINS": CONFIG.widget_allowed_origins,
    "AUTO_ASSIGN": CONFIG.auto_assign,
    "AGENT_AWAY_AFTER_S": CONFIG.agent_away_after_s,
    "REPORT_SLA_S": CONFIG.report_sla_s,
    "HTTP_DB_THREADS": CONFIG.http_db_threads,
    "JOBS_RUNNER": CONFIG.jobs_runner,
    "WEBHOOK_ALLOW_PRIVATE": CONFIG.webhook_allow_private,
    **CONFIG.job_settings,
    "NOTIFY_DELAY_S": CONFIG.notify.delay_s,
    "NOTIFY_MIN_INTERVAL_S": CONFIG.notify.min_interval_s,
    "NOTIFY_EMAIL": CONFIG.notify.email_backend is not None,
    "NOTIFY_EMAIL_PREVIEW": CONFIG.notify.email_previews,
    "DONOR_URL_TEMPLATE": CONFIG.notify.donor_url_template,
    "PUBLIC_URL": CONFIG.notify.public_url,
    "ATTACHMENT_MAX_BYTES": CONFIG.attachments.max_bytes,
    "ATTACHMENT_TYPES": CONFIG.attachments.allowed_types,
    "ATTACHMENT_LINK_TTL_S": CONFIG.attachments.link_ttl_s,
    "ATTACHMENT_MAX_PIXELS": CONFIG.attachments.max_pixels,
    "CLAMAV_URL": CONFIG.attachments.clamav_url,
    "REDACT": CONFIG.messages.redact,
    "EDIT_WINDOW_S": CONFIG.messages.edit_window_s,
    "REACTIONS": CONFIG.messages.reactions,
    "RETENTION_DAYS": CONFIG.messages.retention_days,
    # Message search (search/): the text search configuration of PostgreSQL, the language of MongoDB's index.
    "SEARCH_LANGUAGE": CONFIG.search_language,
}

# Email (offline notifications): SMTP from EMAIL_*, files under var/mail/ in development (config._notify).
EMAIL_BACKEND = CONFIG.notify.email_backend or "django.core.mail.backends.dummy.EmailBackend"
EMAIL_HOST = CONFIG.notify.email_settings["EMAIL_HOST"]
EMAIL_PORT = CONFIG.notify.email_settings["EMAIL_PORT"]
EMAIL_HOST_USER = CONFIG.notify.email_settings["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = CONFIG.notify.email_settings["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = CONFIG.notify.email_settings["EMAIL_USE_TLS"]
EMAIL_USE_SSL = CONFIG.notify.email_settings["EMAIL_USE_SSL"]
EMAIL_TIMEOUT = CONFIG.notify.email_settings["EMAIL_TIMEOUT"]
DEFAULT_FROM_EMAIL = CONFIG.notify.email_settings["DEFAULT_FROM_EMAIL"]
EMAIL_FILE_PATH = CONFIG.notify.email_settings["EMAIL_FILE_PATH"]

# Celery (jobs/, chatservice/celery.py): the stack's Redis is the broker; a job's state lives in the
# database (jobs.models.Job), so results are not stored. A task is acknowledged after it ran, so a worker
# killed mid-task leaves it to another one (the job's lease and the sweep cover it as well).
CELERY_BROKER_URL = CONFIG.redis_url
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "chatservice.authentication.JWTAuthentication",
        "chatservice.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["chatservice.parsers.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "chatservice.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CareForAll Chat Service",
    "DESCRIPTION": "Conversations between donors and support staff. Authenticate with `Authorization: Bearer <jwt>`.",
    "VERSION": VERSION,  # pyproject.toml's, like the landing page's
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The two shapes of a new message (chatservice.schema.MessageInputScheme) each have their own messageType
    # choices; without names, both would be called MessageInputMessageTypeEnum.
    "ENUM_NAME_OVERRIDES": {
        "TextMessageTypeEnum": "chatservice.schema.TEXT_MESSAGE_TYPES",
        "FileMessageTypeEnum": "chatservice.schema.FILE_MESSAGE_TYPES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chatservice.schema.require_nonempty_bodies",
        "chatservice.schema.seed_paths",
    ],
}

# One JSON object per line on stderr (chatservice.logs), for every logger. Daphne's access log is not a
# logger: Daphne writes it as text to stdout, so stderr holds only JSON.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"trace_context": {"()": "chatservice.logs.TraceContextFilter"}},
    "formatters": {"json": {"()": "chatservice.logs.JsonFormatter"}},
    "handlers": {
        # Its level is LOG_LEVEL too: loggers opened lower for a reason of their own still print nothing below.
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["trace_context"],
            "level": CONFIG.log_level,
        },
        "channel_layer_drops": {"class": "chatservice.metrics.ChannelLayerDropCounter"},
    },
    "root": {"handlers": ["console"], "level": CONFIG.log_level},
    "loggers": {
        # Django's defaults give these plain-text handlers of their own; here they go through the root's.
        "django": {"handlers": [], "level": CONFIG.log_level, "propagate": True},
        "django.server": {"handlers": [], "level": CONFIG.log_level, "propagate": True},
        # Its DEBUG records carry statement parameters, i.e. message content: never below INFO.
        "django.db.backends": {"level": "INFO" if CONFIG.log_level == "DEBUG" else CONFIG.log_level},
        # Opened to INFO (at least) for its over-capacity record, counted as chat_channel_layer_drops_total.
        "channels_redis.core": {
            "level": "DEBUG" if CONFIG.log_level == "DEBUG" else "INFO",
            "handlers": ["channel_layer_drops"],
        },
    },
}
# Python's warnings (a deprecation at start-up, say) become WARNING records of "py.warnings": JSON as well.
logging.captureWarnings(True)
