"""Settings come from the environment, parsed in one place; bad values stop start-up with one line."""

from __future__ import annotations

import subprocess
import sys

import jwt
import pytest

from chatservice.config import BASE_DIR, ConfigError, load_config
from chatservice.devkeys import generate_rsa_keypair

PUBLIC_PEM = generate_rsa_keypair()[1].decode()
PROD = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "s3cret",
    "ALLOWED_HOSTS": "chat.example.org",
    "JWT_PUBLIC_KEY": PUBLIC_PEM,
}


def test_production_environment_is_accepted():
    config = load_config(PROD)
    assert config.debug is False
    assert config.allowed_hosts == ["chat.example.org"]
    assert config.port == 3006
    assert config.jwt_algorithms == ["RS256"]
    assert config.dev_private_key_path is None
    assert config.redis_url is None


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY is required"),
        ("JWT_PUBLIC_KEY", r"JWT_PUBLIC_KEY \(or JWT_PUBLIC_KEY_FILE\) is required"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS is required"),
    ],
)
def test_production_refuses_to_start_without_a_secret(missing, message):
    env = {k: v for k, v in PROD.items() if k != missing}
    with pytest.raises(ConfigError, match=message):
        load_config(env)


def test_public_key_with_escaped_newlines_is_accepted():
    assert load_config({**PROD, "JWT_PUBLIC_KEY": PUBLIC_PEM.replace("\n", "\\n")}).jwt_public_key == PUBLIC_PEM.strip()


def test_public_key_from_file(tmp_path):
    path = tmp_path / "pub.pem"
    path.write_text(PUBLIC_PEM)
    env = {k: v for k, v in PROD.items() if k != "JWT_PUBLIC_KEY"} | {"JWT_PUBLIC_KEY_FILE": str(path)}
    assert load_config(env).jwt_public_key == PUBLIC_PEM.strip()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(env | {"JWT_PUBLIC_KEY_FILE": str(tmp_path / "missing.pem")})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not a key", "must be a PEM public key"),
        ("-----BEGIN PUBLIC KEY-----\\ngarbage\\n-----END PUBLIC KEY-----", "not a valid PEM public key"),
        ("-----BEGIN PRIVATE KEY-----\\nx\\n-----END PRIVATE KEY-----", "must be a PEM public key"),
    ],
)
def test_bad_public_key_is_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**PROD, "JWT_PUBLIC_KEY": value})


@pytest.mark.parametrize("algorithms", ["HS256", "RS256,HS512", "none", ""])
def test_only_asymmetric_algorithms_are_allowed(algorithms):
    with pytest.raises(ConfigError, match="asymmetric"):
        load_config({**PROD, "JWT_ALGORITHMS": algorithms})


def test_several_asymmetric_algorithms():
    assert load_config({**PROD, "JWT_ALGORITHMS": "RS256, ES256"}).jwt_algorithms == ["RS256", "ES256"]


def test_default_database_is_sqlite_in_var_with_wal_and_busy_timeout():
    config = load_config(PROD)
    db = config.database
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(BASE_DIR / "var" / "chat.sqlite3")
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert db["OPTIONS"]["timeout"] >= 5
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_sqlite_url(tmp_path):
    db = load_config({**PROD, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}).database
    assert db["NAME"] == f"{tmp_path}/x.db"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_url(scheme):
    db = load_config({**PROD, "DATABASE_URL": f"{scheme}://chat:pw@db.internal:5433/chat"}).database
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "chat",
        "chat",
        "pw",
        "db.internal",
        5433,
    )
    assert db["CONN_MAX_AGE"] == 0


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("mongodb://localhost:27017/chat_test", "chat_test"),
        ("mongodb://chat:s3cret@mongo1:27017,mongo2:27017/chat?replicaSet=rs0&authSource=admin", "chat"),
        ("mongodb://mongo:27017/chat?replicaSet=rs0", "chat"),
        # SRV URLs are not resolved at start-up: the lookup happens on the first connection.
        ("mongodb+srv://chat:pw@cluster0.example.mongodb.net/chat?retryWrites=true&w=majority", "chat"),
    ],
)
def test_mongodb_urls_select_django_mongodb_backend(url, name):
    config = load_config({**PROD, "DATABASE_URL": url})
    assert config.database_url_scheme == "mongodb"
    # The backend takes the whole connection string (credentials, hosts, options) as HOST.
    assert config.database == {"ENGINE": "django_mongodb_backend", "HOST": url, "NAME": name}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:p@h/db", "not supported"),
        ("nonsense", "not supported"),
        ("postgres://u:p@host", "needs a database name"),
        ("sqlite://", "needs a file path"),
        ("mongodb://localhost:27017", "mongodb URL needs a database name"),
        ("mongodb://localhost:27017/", "mongodb URL needs a database name"),
        ("mongodb://", "malformed: Must provide at least one hostname"),
        ("mongodb://localhost:notaport/chat", "malformed: Port contains non-digit characters"),
        ("mongodb://localhost:27017/ch at", "malformed: Bad database name"),
        ("mongodb://localhost/chat?connectTimeoutMS=soon", "malformed: connecttimeoutms must be an integer"),
        ("mongodb://localhost/chat?replicaSett=rs0", "malformed: Unknown option: replicasett"),
        ("mongodb+srv://a.example.com:27017/chat", "malformed: mongodb\\+srv:// URIs must not include a port"),
        ("mongodb+srv://a.example.com,b.example.com/chat", "malformed: mongodb\\+srv:// URIs must include one"),
        ("mongodb://u:p@w@host/chat", "malformed"),
    ],
)
def test_bad_database_urls_are_refused(url, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**PROD, "DATABASE_URL": url})


def test_redis_url():
    assert load_config({**PROD, "REDIS_URL": "redis://localhost:6379/0"}).redis_url == "redis://localhost:6379/0"
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_config({**PROD, "REDIS_URL": "http://localhost"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "abc"}, "PORT='abc' is not an integer"),
        ({"PORT": "70000"}, "out of range"),
        ({"DJANGO_DEBUG": "maybe"}, "not a boolean"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
        ({"CHAT_HTTP_DB_THREADS": "0"}, "CHAT_HTTP_DB_THREADS"),
        ({"CHAT_HTTP_DB_THREADS": "many"}, "CHAT_HTTP_DB_THREADS"),
    ],
)
def test_bad_scalars_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**PROD, **env})


def test_port_and_log_level():
    config = load_config({**PROD, "PORT": "8080", "LOG_LEVEL": "debug"})
    assert (config.port, config.log_level) == (8080, "DEBUG")


def test_http_threads_default_and_override():
    assert load_config(PROD).http_db_threads == 8
    assert load_config({**PROD, "CHAT_HTTP_DB_THREADS": "2"}).http_db_threads == 2


def test_metrics_token_is_off_by_default_and_kept_out_of_repr():
    assert load_config(PROD).metrics_token is None
    assert load_config({**PROD, "METRICS_TOKEN": "  "}).metrics_token is None  # empty: still off
    token = "0123456789abcdef-scrape"
    config = load_config({**PROD, "METRICS_TOKEN": f" {token} "})
    assert config.metrics_token == token
    assert token not in repr(config)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("short-token", "METRICS_TOKEN must be at least 16 characters"),
        ("sixteen chars with spaces", "printable ASCII without spaces"),
        ("non-ascii-tökén-of-some-length", "printable ASCII without spaces"),
    ],
)
def test_bad_metrics_tokens_are_refused_without_echoing_them(token, message):
    with pytest.raises(ConfigError, match=message) as refused:
        load_config({**PROD, "METRICS_TOKEN": token})
    assert token not in str(refused.value)


def test_development_defaults_generate_a_key_pair_once(monkeypatch, tmp_path):
    monkeypatch.setattr("chatservice.config.VAR_DIR", tmp_path)
    first = load_config({})
    assert first.debug is True
    assert first.dev_private_key_path == tmp_path / "dev_jwt_private.pem"
    assert first.dev_private_key_path.stat().st_mode & 0o077 == 0  # private key readable by owner only
    second = load_config({})
    assert second.jwt_public_key == first.jwt_public_key


def test_misconfigured_start_fails_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "x", "ALLOWED_HOSTS": "a"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "chat-service: configuration error: "
        "JWT_PUBLIC_KEY (or JWT_PUBLIC_KEY_FILE) is required when DJANGO_DEBUG is off"
    ]


def test_mint_token_prints_a_token_the_service_accepts(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "mint_token", "--user", "u1", "--role", "USER"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    public_pem = (BASE_DIR / "var" / "dev_jwt_public.pem").read_text()
    claims = jwt.decode(token, public_pem, algorithms=["RS256"])
    assert (claims["sub"], claims["role"]) == ("u1", "USER")


def test_mint_token_refuses_when_a_real_key_is_configured(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "JWT_PUBLIC_KEY": PUBLIC_PEM, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    result = subprocess.run(
        [sys.executable, "manage.py", "mint_token", "--user", "u1"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "only signs with the development key pair" in result.stderr


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({}, "http://localhost:4318/v1/traces"),
        # The seed's form: the full traces URL.
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/v1/traces"}, "http://collector:4318/v1/traces"),
        # The OpenTelemetry standard's form: the collector's base URL.
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example/otlp/"}, "https://otel.example/otlp/v1/traces"),
        # The signal-specific variable is a full URL and wins.
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b/traces"},
            "http://b/traces",
        ),
    ],
)
def test_otlp_endpoint_forms(env, endpoint):
    tracing = load_config({**PROD, "OTEL_TRACES_ENABLED": "true", **env}).tracing
    assert (tracing.enabled, tracing.endpoint, tracing.service_name) == (True, endpoint, "chat-service")


def test_tracing_is_off_by_default_and_named_by_otel_service_name():
    assert load_config(PROD).tracing.enabled is False
    assert load_config({**PROD, "OTEL_SERVICE_NAME": "chat-eu"}).tracing.service_name == "chat-eu"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_ENABLED": "sometimes"}, "OTEL_TRACES_ENABLED"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT must be an http"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://collector:4317"}, "must be an http"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/v1/traces?x=1"}, "must not carry a query string"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://c/x"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http"),
    ],
)
def test_bad_tracing_settings_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**PROD, **env})


def test_websocket_limits_have_safe_defaults_and_can_be_set():
    config = load_config(PROD)
    assert config.ws_limits == {
        "WS_MAX_BUFFERED_BYTES": 1024 * 1024,
        "WS_MAX_BUFFERED_FRAMES": 1000,
        "WS_MAX_SOCKETS_PER_USER": 20,
    }
    assert config.ws_delays == {"WS_PRESENCE_GRACE_S": 5.0, "WS_SLOW_CLOSE_GRACE_S": 10.0}
    assert config.staff_trusted_origins == ()
    tuned = load_config(
        {
            **PROD,
            "CHAT_WS_MAX_BUFFERED_BYTES": "262144",
            "CHAT_WS_MAX_SOCKETS_PER_USER": "5",
            "CHAT_WS_PRESENCE_GRACE_S": "0.5",
            "CHAT_STAFF_TRUSTED_ORIGINS": "https://Desk.Example.org, https://desk.example.org:443, http://10.0.0.5:8080",
        }
    )
    assert tuned.ws_limits["WS_MAX_BUFFERED_BYTES"] == 262144
    assert tuned.ws_limits["WS_MAX_SOCKETS_PER_USER"] == 5
    assert tuned.ws_delays["WS_PRESENCE_GRACE_S"] == 0.5
    # As browsers send them: lower case, no default port.
    assert tuned.staff_trusted_origins == ("https://desk.example.org", "http://10.0.0.5:8080")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHAT_WS_MAX_BUFFERED_BYTES": "1000"}, r"CHAT_WS_MAX_BUFFERED_BYTES=1000 is out of range"),
        ({"CHAT_WS_MAX_SOCKETS_PER_USER": "0"}, r"CHAT_WS_MAX_SOCKETS_PER_USER=0 is out of range"),
        ({"CHAT_WS_PRESENCE_GRACE_S": "soon"}, "is not a number"),
        ({"CHAT_WS_PRESENCE_GRACE_S": "nan"}, "is out of range"),
        ({"CHAT_WS_SLOW_CLOSE_GRACE_S": "0"}, "is out of range"),
        ({"CHAT_STAFF_TRUSTED_ORIGINS": "desk.example.org"}, "is not an origin"),
        ({"CHAT_STAFF_TRUSTED_ORIGINS": "https://desk.example.org/admin"}, "is not an origin"),
        ({"CHAT_STAFF_TRUSTED_ORIGINS": "https://desk.example.org:99999"}, "invalid port"),
    ],
)
def test_bad_websocket_limits_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**PROD, **env})


def test_attachments_default_to_var_and_ten_mib_and_can_be_set():
    default = load_config(PROD).attachments
    assert default.max_bytes == 10 * 1024 * 1024 and default.storage == "filesystem"
    assert default.directory == BASE_DIR / "var" / "attachments" and default.clamav_url is None
    assert "application/pdf" in default.allowed_types and default.link_ttl_s == 300
    custom = load_config(
        {
            **PROD,
            "CHAT_ATTACHMENT_MAX_BYTES": "2048",
            "CHAT_ATTACHMENT_TYPES": "image/png, application/pdf",
            "CHAT_ATTACHMENT_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": "chat-files",
            "AWS_S3_ENDPOINT_URL": "https://minio.internal:9000",
            "CLAMAV_URL": "unix:///run/clamav/clamd.ctl",
        }
    ).attachments
    assert custom.max_bytes == 2048 and custom.allowed_types == ("image/png", "application/pdf")
    assert custom.s3["bucket_name"] == "chat-files" and custom.s3["endpoint_url"] == "https://minio.internal:9000"
    assert custom.s3["default_acl"] is None and custom.s3["querystring_auth"] is True  # private objects
    assert custom.clamav_url == "unix:///run/clamav/clamd.ctl"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHAT_ATTACHMENT_STORAGE": "s3"}, "needs AWS_STORAGE_BUCKET_NAME"),
        ({"CHAT_ATTACHMENT_STORAGE": "ftp"}, "CHAT_ATTACHMENT_STORAGE='ftp' is not one of"),
        ({"CHAT_ATTACHMENT_TYPES": "image/svg+xml"}, "CHAT_ATTACHMENT_TYPES names image/svg"),
        ({"CLAMAV_URL": "clamd:3310"}, "is not tcp://host:port or unix:///path"),
        ({"CLAMAV_URL": "tcp://clamd"}, "is not tcp://host:port"),
        ({"CHAT_ATTACHMENT_MAX_BYTES": "10"}, "CHAT_ATTACHMENT_MAX_BYTES"),
    ],
)
def test_bad_attachment_settings_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**PROD, **env})


def test_s3_storage_is_django_storages_with_the_settings(tmp_path):
    """Settings built with CHAT_ATTACHMENT_STORAGE=s3 hand django-storages its options (no S3 service can run
    here, so this checks the wiring, not a bucket)."""
    code = (
        "import django, os; django.setup(); "
        "from django.core.files.storage import storages; s = storages['attachments']; "
        "print(type(s).__name__, s.bucket_name, s.endpoint_url, s.default_acl, s.querystring_auth)"
    )
    env = {
        **PROD,
        "DJANGO_SETTINGS_MODULE": "chatservice.settings",
        "CHAT_ATTACHMENT_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": "chat-files",
        "AWS_S3_ENDPOINT_URL": "https://minio.internal:9000",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=BASE_DIR, check=True
    )
    assert out.stdout.split() == ["S3Storage", "chat-files", "https://minio.internal:9000", "None", "True"]
