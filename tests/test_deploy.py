"""The production deployment: Dockerfile, .dockerignore, docker-compose.yml and deploy/nginx.conf.

There is no Docker engine on the machines this runs on, so the compose stack itself never starts here.
What can be proven is proven:

- the compose file, checked as data (PyYAML) against the code it deploys: the environment it builds,
  interpolated from a sample .env the way compose does, loads as a production configuration of
  chatservice.config; the worker command's Daphne flags are the Makefile's; the proxy's timeouts outlast
  Daphne's heartbeat; the proxy's upstreams are the worker services;
- the image's build and run steps, replayed on a copy of the build context that honours .dockerignore:
  its collectstatic step, the migrate service's command and the image's Daphne command, probed by the
  compose health check command, which must keep passing while Redis is down (liveness, /live);
- deploy/nginx.conf, run by the real nginx binary (rewritten only for the worker addresses, the listen
  port and the pid/log/temp paths) in front of two real Daphne workers sharing a real redis-server and
  one database: load balancing, WebSockets, the body limit, forwarded headers, admin login behind TLS,
  failover and a graceful stop, /metrics kept off the public port, and no token in nginx's logs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from daphne.cli import CommandLineInterface
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from chatservice.config import BASE_DIR, ConfigError, load_config
from chatservice.devkeys import generate_rsa_keypair
from tests.servers import DAPHNE, STARTUP_TIMEOUT_S, Server, daphne, free_port, redis_server, terminate
from tests.servers import mint as mint_token

COMPOSE_FILE = BASE_DIR / "docker-compose.yml"
DOCKERFILE = BASE_DIR / "Dockerfile"
DOCKERIGNORE = BASE_DIR / ".dockerignore"
NGINX_CONF = BASE_DIR / "deploy" / "nginx.conf"
ENV_EXAMPLE = BASE_DIR / "deploy" / "env.example"
MAKEFILE = BASE_DIR / "Makefile"
VENV_BIN = Path(sys.executable).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FRAME_TIMEOUT_S = 15


# --- compose, as compose reads it ------------------------------------------------------------------


class MissingVariable(Exception):
    """compose's refusal to start: a `${VAR:?message}` whose variable is unset or empty."""


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<named>[A-Za-z_]\w*))"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error} (the forms the compose specification defines, without nesting)."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["braced"] or match["named"], match["op"], match["arg"]
        if arg and "$" in arg:
            raise AssertionError(f"nested interpolation is not supported here: {match[0]}")
        unset = name not in env if op in {"-", "?"} else not env.get(name)
        if op in {":-", "-"} and unset:
            return arg
        if op in {":?", "?"} and unset:
            raise MissingVariable(f"{name}: {arg}")
        return env.get(name, "")

    return _VARIABLE.sub(substitute, value)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def raw_environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def resolved_environment(service: Mapping[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    return {name: interpolate(value, dotenv) for name, value in raw_environment(service).items()}


def one_line(pem: bytes) -> str:
    """A PEM as it is written in a .env file: one line, newlines as backslash-n."""
    return pem.decode().strip().replace("\n", "\\n")


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


@pytest.fixture(scope="module")
def dotenv(keys) -> dict[str, str]:
    """The smallest .env an operator can write: only the required values."""
    return {
        "DJANGO_SECRET_KEY": "a-long-random-production-secret",
        "ALLOWED_HOSTS": "chat.example.com",
        "JWT_PUBLIC_KEY": one_line(keys[1]),
    }


# --- the Dockerfile and the image's command ---------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line
    ]


def instructions(name: str) -> list[str]:
    return [args for keyword, args in dockerfile() if keyword == name]


def image_cmd() -> list[str]:
    cmd = instructions("CMD")
    assert cmd, "the Dockerfile has no CMD"
    return json.loads(cmd[-1])  # exec form: Daphne is PID 1's child of init and gets signals directly


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        assert "build" in service, "a service without a command must run the image built here"
        return image_cmd()
    return shlex.split(command) if isinstance(command, str) else list(command)


def worker_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if command_of_or_none(svc)[:1] == ["daphne"]}


def command_of_or_none(service: Mapping[str, Any]) -> list[str]:
    if service.get("command") is None and "build" not in service:
        return []
    return command_of(service)


def daphne_args(argv: list[str]):
    """Daphne's own command-line parser, so spellings (--websocket_timeout / -timeout) do not matter."""
    assert argv[0] == "daphne", argv
    return CommandLineInterface().parser.parse_args(argv[1:])


def makefile_daphne_flags() -> list[str]:
    match = re.search(r"^DAPHNE_FLAGS\s*\??=\s*(.+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert match, "DAPHNE_FLAGS not found in the Makefile"
    return shlex.split(match[1])


def worker_flags() -> list[str]:
    """The image's Daphne options without the bind address, port and application (tests bind their own)."""
    argv = image_cmd()[1:-1]
    flags: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in {"-b", "--bind", "-p", "--port"}:
            skip = True
        else:
            flags.append(token)
    return flags


# --- nginx.conf, as nginx reads it ------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"expected one {name!r} in {self.name} {self.args}, found {len(found)}"
        return found[0]

    def value(self, name: str) -> str | None:
        found = self.all(name)
        return found[-1].args[0] if found else None


def parse_nginx(text: str) -> Directive:
    tokens = re.findall(r"""#[^\n]*|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[{};]|[^\s{};'"#]+""", text)
    root = Directive("main", [], [])
    stack, words = [root], []
    for token in tokens:
        if token.startswith("#"):
            continue
        if token == ";":
            stack[-1].block.append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            block = Directive(words[0], words[1:], [])
            stack[-1].block.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token[1:-1] if token[0] in "'\"" else token)
    assert len(stack) == 1 and not words, "unbalanced nginx.conf"
    return root


def nginx_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def nginx_seconds(value: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|[smhd]?)", value):
        total += int(number) * {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


def compose_seconds(value: str) -> float:
    return nginx_seconds(value)  # compose durations ("30s", "1m30s") use the same units


def http_block() -> Directive:
    return parse_nginx(NGINX_CONF.read_text()).one("http")


def ws_location() -> Directive:
    """The location nginx picks for a WebSocket path (longest matching prefix)."""
    server = http_block().one("server")
    path = "/ws/conversations/conv_x"
    candidates = [loc for loc in server.all("location") if len(loc.args) == 1 and path.startswith(loc.args[0])]
    assert candidates, "no location serves /ws/"
    return max(candidates, key=lambda loc: len(loc.args[0]))


def effective(location: Directive, name: str) -> str | None:
    """A directive's value in a location, inherited from server and http when not set there."""
    http = http_block()
    for level in (location, http.one("server"), http):
        value = level.value(name)
        if value is not None:
            return value
    return None


# ===================================================================================================
# The compose file
# ===================================================================================================


def test_only_the_proxy_publishes_a_port_and_it_is_the_one_nginx_listens_on():
    published = {name: svc["ports"] for name, svc in services().items() if svc.get("ports")}
    assert list(published) == ["nginx"], f"only the proxy may publish ports, not {sorted(published)}"
    (mapping,) = published["nginx"]
    host_port, container_port = str(mapping).split(":")[-2:]
    assert host_port == "3006", mapping
    listens = [d.args[0].rsplit(":", 1)[-1] for d in http_block().one("server").all("listen")]
    assert listens == [container_port], f"nginx listens on {listens}, compose publishes container port {container_port}"


def test_the_proxy_balances_over_every_worker_service_on_the_port_daphne_binds():
    workers = worker_services()
    assert len(workers) >= 2, f"at least two Daphne workers, found {sorted(workers)}"
    upstream = http_block().one("upstream")
    servers = {d.args[0] for d in upstream.all("server")}
    expected = set()
    for name, svc in workers.items():
        args = daphne_args(command_of(svc))
        # Every interface: nginx reaches the worker over the compose network.
        assert args.host == "0.0.0.0", f"{name}: daphne -b 0.0.0.0"  # noqa: S104
        expected.add(f"{name}:{args.port}")
    assert servers == expected, "nginx's upstream must list exactly the worker services"
    answered_by_nginx = []
    for directive in http_block().one("server").all("location"):
        if directive.value("return") is not None:
            answered_by_nginx.append(directive.args)
            continue
        assert directive.value("proxy_pass") == f"http://{upstream.args[0]}"
    assert answered_by_nginx == [["=", "/metrics"]], "only /metrics is answered by the proxy itself"
    nginx_deps = services()["nginx"].get("depends_on", {})
    assert set(workers) <= set(nginx_deps), "nginx starts after the workers"


def test_every_long_running_service_has_a_health_check_and_a_restart_policy():
    for name, svc in services().items():
        if svc.get("restart") == "no":
            continue
        assert svc.get("restart") in {"always", "unless-stopped", "on-failure"}, f"{name}: restart policy"
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no health check"
        assert not svc["healthcheck"].get("disable"), name


def probe_path(service: Mapping[str, Any]) -> str:
    """The path a compose health check requests (the URL in its command)."""
    (path,) = re.findall(r"https?://[^/\s'\"]+(/[^\s'\"]*)", " ".join(service["healthcheck"]["test"]))
    return path


def test_workers_are_probed_for_liveness_and_the_stack_for_readiness():
    """A worker's health check (what gates nginx's start and what restart-on-unhealthy tooling acts on)
    is /live, which needs no dependency; /health, with its MongoDB and Redis round trips, is probed
    through the proxy: the stack's readiness. Workers start only once their dependencies are healthy."""
    for name, svc in worker_services().items():
        assert probe_path(svc) == "/live", name
        assert {"mongo", "redis", "migrate"} <= set(svc["depends_on"]), name
    assert probe_path(services()["nginx"]) == "/health"


def test_prometheus_can_scrape_every_worker_by_its_service_name(dotenv):
    """Prometheus reaches each worker as `<service>:8000` (README, "Metrics"): Django refuses a Host it
    does not know, so every worker's name is an allowed host. /metrics is off unless METRICS_TOKEN is
    set, and compose never requires it."""
    for name, svc in worker_services().items():
        config = load_config(resolved_environment(svc, dotenv))
        assert set(worker_services()) <= set(config.allowed_hosts), name
        assert config.metrics_token is None
        assert raw_environment(svc)["METRICS_TOKEN"] == "${METRICS_TOKEN:-}"
        token = "a-scrape-token-of-32-characters!"
        assert load_config(resolved_environment(svc, {**dotenv, "METRICS_TOKEN": token})).metrics_token == token


def test_state_lives_in_named_volumes():
    declared = set(compose().get("volumes") or {})
    for name, path in {"mongo": "/data/db", "redis": "/data"}.items():
        mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in services()[name].get("volumes", [])}
        assert path in mounts, f"{name} must keep {path} in a volume"
        assert mounts[path] in declared, f"{name}'s {path} must be a named volume, not {mounts[path]!r}"


def test_mongo_is_a_replica_set_the_database_url_names(dotenv):
    mongo = services()["mongo"]
    command = command_of(mongo)
    assert "--bind_ip_all" in command
    replica_set = command[command.index("--replSet") + 1]
    probe = " ".join(mongo["healthcheck"]["test"])
    initiated = re.search(r"rs\.initiate\(\{\s*_id:\s*'([^']+)'.*host:\s*'([^']+)'", probe)
    assert initiated, "the health check must initiate the replica set"
    assert initiated[1] == replica_set
    host, port = initiated[2].split(":")
    assert host in services() and host == "mongo" and port == "27017"
    # The replica set's member address is what drivers connect to after discovery: it must resolve on
    # the compose network, and the application must ask for the same replica set.
    from pymongo.uri_parser_shared import _validate_uri

    for name, svc in services().items():
        env = resolved_environment(svc, dotenv)
        if "DATABASE_URL" not in env:
            continue
        uri = _validate_uri(env["DATABASE_URL"])
        assert uri["nodelist"] == [(host, int(port))], name
        assert uri["options"].get("replicaSet") == replica_set, f"{name}: DATABASE_URL must name replicaSet"


def test_migrations_run_once_before_any_worker_starts():
    migrate = services()["migrate"]
    assert command_of(migrate)[:3] == ["python", "manage.py", "migrate"] and "--noinput" in command_of(migrate)
    assert migrate.get("restart") == "no"
    assert migrate["depends_on"]["mongo"]["condition"] == "service_healthy"
    for name, svc in worker_services().items():
        assert svc.get("image") == migrate.get("image") and svc.get("build") == migrate.get("build"), name
        deps = svc["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name


def test_compose_refuses_to_start_without_each_secret(dotenv):
    """Every value chatservice.config requires with debug off is a `${VAR:?message}`: compose stops
    before starting anything, instead of a worker crash-looping on a configuration error."""
    for name, svc in services().items():
        raw = raw_environment(svc)
        if not raw:
            continue
        env = resolved_environment(svc, dotenv)
        load_config(env)  # the complete environment is a valid production configuration
        for variable in env:
            try:
                load_config({k: v for k, v in env.items() if k != variable})
            except ConfigError:
                assert re.search(rf"\$\{{{variable}:\?[^}}]+\}}", raw[variable]), (
                    f"{name}: {variable} is required by the service, so compose must use ${{{variable}:?…}}"
                )
                with pytest.raises(MissingVariable, match=variable):
                    resolved_environment(svc, {k: v for k, v in dotenv.items() if k != variable})
                with pytest.raises(MissingVariable, match=variable):
                    resolved_environment(svc, {**dotenv, variable: ""})


def test_the_compose_environment_is_a_production_configuration(dotenv):
    """The environment compose hands the workers, from the smallest .env, loads as chatservice.config
    reads it: debug off, MongoDB, Redis, the Auth Service key; and it holds no variable the service does
    not read (a misspelt name would be silently ignored), OpenTelemetry's own OTEL_* aside."""
    for name in ["migrate", *worker_services()]:
        env = resolved_environment(services()[name], dotenv)
        recording = RecordingEnv(env)
        config = load_config(recording)
        read = recording.read
        assert config.debug is False
        assert config.database_url_scheme == "mongodb" and config.database["NAME"] == "chat"
        assert config.redis_url == "redis://redis:6379/0"
        assert config.channel_layer == "pubsub"
        assert config.jwt_public_key.strip() == pem_from_env_line(dotenv["JWT_PUBLIC_KEY"])
        assert "chat.example.com" in config.allowed_hosts
        assert "localhost" in config.allowed_hosts, "the health checks call the workers as localhost"
        unread = {v for v in env if v not in read and not v.startswith("OTEL_")}
        assert not unread, f"{name} sets variables chatservice.config never reads: {sorted(unread)}"
        for otel in ("OTEL_TRACES_ENABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"):
            assert re.fullmatch(rf"\$\{{{otel}:-[^}}]*\}}", raw_environment(services()[name])[otel]), otel


class RecordingEnv(dict):
    """An environment that remembers which names were looked up."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def pem_from_env_line(one_line_pem: str) -> str:
    return one_line_pem.replace("\\n", "\n").strip()


def test_env_example_documents_every_variable_and_its_real_default(dotenv):
    text = ENV_EXAMPLE.read_text()
    documented = dict(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", text, re.MULTILINE))
    required = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))
    referenced: dict[str, str] = {}
    for svc in services().values():
        for value in raw_environment(svc).values():
            for match in _VARIABLE.finditer(value):
                if match["braced"]:
                    referenced[match["braced"]] = match["op"] or ""
    assert set(documented) == set(referenced), "deploy/env.example and docker-compose.yml name the same variables"
    assert required == {v for v, op in referenced.items() if op == ":?"}, "required ones are the uncommented ones"
    # The defaults shown in comments are the ones that apply: setting them all changes nothing.
    optional = {k: v for k, v in documented.items() if k not in required}
    base = resolved_environment(services()["worker1"], dotenv)
    spelled_out = resolved_environment(services()["worker1"], {**dotenv, **optional})
    assert load_config(spelled_out) == load_config(base)
    assert {k: v for k, v in spelled_out.items() if k.startswith("OTEL_")} == {
        k: v for k, v in base.items() if k.startswith("OTEL_")
    }


def test_worker_daphne_flags_are_the_makefile_heartbeat_flags():
    """One heartbeat policy: the image runs Daphne with every option the Makefile's DAPHNE_FLAGS sets."""
    wanted = daphne_args(["daphne", *makefile_daphne_flags(), "chatservice.asgi:application"])
    # The options the Makefile spells out (some equal Daphne's defaults: they are pinned all the same).
    unset = object()
    parser = CommandLineInterface().parser
    parser.set_defaults(**{action.dest: unset for action in parser._actions})
    spelled = vars(parser.parse_args([*makefile_daphne_flags(), "chatservice.asgi:application"]))
    changed = {k for k, v in spelled.items() if v is not unset and k != "application"}
    assert {"ping_interval", "ping_timeout", "websocket_timeout"} <= changed
    for name, svc in worker_services().items():
        args = daphne_args(command_of(svc))
        assert {k: getattr(args, k) for k in changed} == {k: getattr(wanted, k) for k in changed}, name
        assert args.application == "chatservice.asgi:application"
        # nginx replaces X-Forwarded-For/-Proto (deploy/nginx.conf); Daphne must use them.
        assert args.proxy_headers, f"{name}: --proxy-headers"


def test_proxy_timeouts_outlast_the_heartbeat_and_websockets_are_not_buffered():
    location = ws_location()
    for name, svc in worker_services().items():
        args = daphne_args(command_of(svc))
        heartbeat = args.ping_interval + args.ping_timeout  # a silent socket is dropped by Daphne by then
        for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
            value = effective(location, timeout)
            assert value is not None and nginx_seconds(value) > heartbeat, (
                f"{timeout} {value} must exceed Daphne's ping interval + timeout ({heartbeat} s) for {name}"
            )
    assert effective(location, "proxy_buffering") == "off"
    assert effective(location, "proxy_http_version") == "1.1"
    server = http_block().one("server")
    assert not location.all("proxy_set_header"), "a location with its own proxy_set_header inherits none"
    headers = {d.args[0].lower(): d.args[1] for d in server.all("proxy_set_header")}
    assert headers["upgrade"] == "$http_upgrade"
    connection_map = next(m for m in http_block().all("map") if m.args == ["$http_upgrade", headers["connection"]])
    assert {d.name: d.args[0] for d in connection_map.block}["default"] == "upgrade"


def test_proxy_body_limit_is_the_applications():
    assert nginx_size(http_block().value("client_max_body_size")) == settings.MAX_REQUEST_BODY_BYTES


def test_no_log_of_the_proxy_can_contain_the_query_string():
    http = http_block()
    formats = {d.args[0]: " ".join(d.args[1:]) for d in http.all("log_format")}
    forbidden = re.compile(r"\$(request|request_uri|args|query_string|arg_\w+|http_referer|request_body)\b")
    access_logs = [d for block in _walk(http) for d in block.all("access_log")]
    assert access_logs, "the proxy keeps an access log"
    for directive in access_logs:
        if directive.args == ["off"]:
            continue
        fmt = directive.args[1] if len(directive.args) > 1 else "combined"  # combined logs $request
        assert fmt in formats, f"access_log uses {fmt!r}, which logs the request line with its query"
        assert not forbidden.search(formats[fmt]), f"log_format {fmt} logs {forbidden.search(formats[fmt])[0]}"
    # nginx writes the raw request line into every error message of a request.
    assert effective(ws_location(), "error_log") == "/dev/null"


def _walk(block: Directive) -> Iterator[Directive]:
    yield block
    for child in block.block or []:
        if child.block is not None:
            yield from _walk(child)


def test_workers_stop_gracefully_within_the_grace_period():
    assert [s.upper() for s in instructions("STOPSIGNAL")] in ([], ["SIGTERM"])
    for name, svc in worker_services().items():
        args = daphne_args(command_of(svc))
        grace = compose_seconds(svc.get("stop_grace_period", "10s"))
        assert grace > args.application_close_timeout + 5, (
            f"{name}: stop_grace_period {grace} s leaves Daphne no time to close its applications "
            f"({args.application_close_timeout} s) before SIGKILL"
        )
        assert svc.get("stop_signal", "SIGTERM").upper() == "SIGTERM"


def test_image_runs_as_a_service_user_from_python_311_slim():
    assert instructions("FROM")[0].split()[0] == "python:3.11-slim"
    keywords = [keyword for keyword, _ in dockerfile()]
    users = instructions("USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"
    assert keywords.index("CMD") > len(keywords) - 1 - keywords[::-1].index("USER")


def test_the_image_installs_exactly_the_runtime_pins_before_copying_the_code(tmp_path):
    """The dependency step, run with a stand-in pip that records what it was asked to install, on a
    context holding only what the Dockerfile copied before it."""
    steps = dockerfile()
    install = next(n for n, (keyword, args) in enumerate(steps) if keyword == "RUN" and "pip install" in args)
    copies = [args.split() for keyword, args in steps[:install] if keyword == "COPY"]
    assert copies == [["pyproject.toml", "./"]], "only pyproject.toml before the dependency layer (cache)"
    assert any(keyword == "COPY" and args.split()[0] == "." for keyword, args in steps[install:])

    fake_bin, context, record = tmp_path / "bin", tmp_path / "app", tmp_path / "installed.txt"
    fake_bin.mkdir()
    context.mkdir()
    (fake_bin / "pip").write_text(f'#!/bin/sh\n[ "$1 $2" = "install -r" ] || exit 64\ncat "$3" > {record}\n')
    (fake_bin / "pip").chmod(0o755)
    shutil.copy(BASE_DIR / "pyproject.toml", context)
    env = {**image_env(), "PATH": f"{fake_bin}:{image_env()['PATH']}"}
    subprocess.run(["/bin/sh", "-c", steps[install][1]], cwd=context, env=env, check=True, timeout=60)

    project = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]
    assert record.read_text().splitlines() == project["dependencies"]  # every runtime pin, no dev extra
    assert sorted(p.name for p in context.iterdir()) == ["pyproject.toml"], "the step cleans up after itself"


# ===================================================================================================
# The image's steps, replayed on its build context
# ===================================================================================================


def dockerignore_patterns() -> list[str]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert not line.startswith("!"), "exceptions are not modelled here"
            patterns.append(line.strip("/"))
    return patterns


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def ignored_by_docker(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: a path is left out when it, or a directory above it, matches a pattern."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(_glob_regex(p).match(prefix) for p in patterns for prefix in prefixes)


def copy_build_context(destination: Path) -> set[str]:
    patterns = dockerignore_patterns()
    copied = set()
    for directory, dirnames, filenames in os.walk(BASE_DIR):
        relative_dir = Path(directory).relative_to(BASE_DIR)
        dirnames[:] = [d for d in dirnames if not ignored_by_docker((relative_dir / d).as_posix(), patterns)]
        for filename in filenames:
            relative = (relative_dir / filename).as_posix()
            if ignored_by_docker(relative, patterns):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(BASE_DIR / relative, target)
            copied.add(relative)
    return copied


def test_dockerignore_keeps_the_source_and_leaves_out_the_rest():
    patterns = dockerignore_patterns()
    for path in [
        ".venv/bin/python",
        "var/chat.sqlite3",
        "var/dev_jwt_private.pem",
        ".git/HEAD",
        "bench/results/ws_bench.md",
        "chatservice/__pycache__/x.pyc",
        ".pytest_cache/v",
        ".env",
        "tests/test_deploy.py",
    ]:
        assert ignored_by_docker(path, patterns), f"{path} must stay out of the image"
    local_apps = {app.split(".")[0] for app in settings.INSTALLED_APPS if (BASE_DIR / app.split(".")[0]).is_dir()}
    needed = {"manage.py", "pyproject.toml", "templates/admin/base_site.html"}
    needed |= {f"{app}/__init__.py" for app in local_apps}
    needed |= {p.relative_to(BASE_DIR).as_posix() for p in BASE_DIR.glob("mongo_migrations/**/*.py")}
    for path in sorted(needed):
        if (BASE_DIR / path).exists():
            assert not ignored_by_docker(path, patterns), f"{path} is needed in the image"


@pytest.fixture(scope="module")
def build_context(tmp_path_factory) -> Path:
    context = tmp_path_factory.mktemp("image") / "app"
    context.mkdir()
    copy_build_context(context)
    return context


def image_env() -> dict[str, str]:
    """A build step's environment: the image's ENV lines and a PATH on which python is this venv's."""
    env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": tempfile.gettempdir()}
    for args in instructions("ENV"):
        env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def test_image_build_and_run_steps_work_on_the_build_context(build_context, dotenv, tmp_path):
    """The Dockerfile's collectstatic step, the migrate service's command and the image's Daphne
    command, run on a copy of the build context (what .dockerignore lets through), with the compose
    environment; the worker's compose health check command is the liveness probe. Only the database,
    Redis, bind address and port differ from the containers."""
    (collect,) = [args for args in instructions("RUN") if "collectstatic" in args]
    subprocess.run(["/bin/sh", "-c", collect], cwd=build_context, env=image_env(), check=True, timeout=120)
    static = build_context / "var" / "static"
    assert (static / "admin" / "css" / "base.css").is_file()
    assert list(static.glob("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"))
    assert not list((build_context / "var").glob("*.pem")), "the build must not leave a key pair in the image"

    with redis_server() as redis:
        env = {
            **image_env(),
            **resolved_environment(services()["worker1"], dotenv),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'chat.sqlite3'}",
            "REDIS_URL": redis.url,
        }
        migrate_cmd = command_of(services()["migrate"])
        subprocess.run(migrate_cmd, cwd=build_context, env=env, check=True, timeout=120, stdout=subprocess.DEVNULL)

        port = free_port()
        here = {"daphne": DAPHNE, "0.0.0.0": "127.0.0.1", "8000": str(port)}  # noqa: S104
        argv = [here.get(arg, arg) for arg in image_cmd()]
        probe = [
            sys.executable if a == "python" else a.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            for a in services()["worker1"]["healthcheck"]["test"][1:]
        ]
        assert probe != services()["worker1"]["healthcheck"]["test"][1:], "the probe calls port 8000"
        log = tmp_path / "daphne.log"
        with log.open("wb") as out:
            process = subprocess.Popen(argv, cwd=build_context, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode != 0:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)  # bounded start-up poll
            assert "GET /live" in log.read_text()
            # Served from the context's own files: its collected static assets, its templates.
            # Through the TLS terminator and nginx (their X-Forwarded-* headers, which --proxy-headers trusts;
            # Daphne reads the scheme only beside a forwarded address): plain HTTP straight to a worker is
            # redirected to HTTPS (SECURE_SSL_REDIRECT in the compose environment).
            behind_tls = {"Host": "chat.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
            static_url = f"http://127.0.0.1:{port}/static/admin/css/base.css"
            assert httpx.get(static_url, headers=behind_tls).status_code == 200
            login = httpx.get(f"http://127.0.0.1:{port}/admin/login/", headers=behind_tls)
            assert login.status_code == 200 and "CareForAll" in login.text
            plain = httpx.get(f"http://127.0.0.1:{port}/admin/login/", headers={"Host": "chat.example.com"})
            assert (plain.status_code, plain.headers["location"]) == (301, "https://chat.example.com/admin/login/")
            assert "max-age=31536000" in login.headers["strict-transport-security"]
            # Liveness, not readiness: with Redis gone the probe still passes while /health reports it.
            redis.stop()
            assert subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode == 0
            health = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": "localhost"}, timeout=10)
            assert (health.status_code, health.json()["failing"]) == (503, ["channelLayer"])
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) is not None
        # The same probe fails once the worker is gone: it can report an outage.
        assert subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode != 0


# ===================================================================================================
# deploy/nginx.conf in front of two real workers
# ===================================================================================================


def rewrite_nginx_conf(text: str, upstreams: list[int], listen: int, prefix: Path) -> str:
    """deploy/nginx.conf with the worker addresses, listen port and pid/log/temp paths of this machine.
    Each substitution must apply exactly where expected, so a changed file fails here rather than
    being run half-rewritten."""

    def replace(pattern: str, repl, count: int, text: str) -> str:
        new, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
        assert n == count, f"{pattern!r} matched {n} times in deploy/nginx.conf, expected {count}"
        return new

    ports = iter(upstreams)
    text = replace(
        r"^(\s*server\s+)worker\d+:8000(\b[^;]*?)(\s+resolve)?;",
        lambda m: f"{m[1]}127.0.0.1:{next(ports)}{m[2]};",
        len(upstreams),
        text,
    )
    text = replace(r"^(\s*listen\s+)3006;", rf"\g<1>127.0.0.1:{listen};", 1, text)
    text = replace(r"^pid\s+\S+;", f"pid {prefix}/nginx.pid;", 1, text)
    text = replace(r"/var/log/nginx/", f"{prefix}/", 2, text)
    temp = "".join(
        f"    {kind}_temp_path {prefix}/{kind}_temp;\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = replace(r"^http \{\n", lambda m: m[0] + temp, 1, text)
    directives = re.sub(r"#[^\n]*", "", text)
    assert not re.search(r"/var/|/etc/|/run/", directives), "the test nginx must not touch system paths"
    return text


@dataclass
class Proxy:
    port: int
    prefix: Path
    process: subprocess.Popen
    tokens: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> str:
        return (self.prefix / "access.log").read_text(errors="replace")

    def error_log(self) -> str:
        return (self.prefix / "error.log").read_text(errors="replace")


@contextmanager
def nginx(upstreams: list[Server]) -> Iterator[Proxy]:
    assert Path(NGINX).exists(), "nginx is required (apt-get install nginx; .ci/run installs it)"
    # World-readable: nginx's worker processes run as an unprivileged user when the tests run as root.
    prefix = Path(tempfile.mkdtemp(prefix="nginx-"))
    prefix.chmod(0o755)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(rewrite_nginx_conf(NGINX_CONF.read_text(), [s.port for s in upstreams], port, prefix))
    test = subprocess.run(
        [NGINX, "-t", "-e", "stderr", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True, timeout=30
    )
    assert test.returncode == 0, test.stderr
    with (prefix / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [NGINX, "-e", "stderr", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (prefix / "stderr.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)  # bounded start-up poll
        yield Proxy(port, prefix, process)
    finally:
        terminate(process)
        shutil.rmtree(prefix, ignore_errors=True)


def test_nginx_accepts_the_production_file_up_to_the_worker_names(tmp_path):
    """`nginx -t` on deploy/nginx.conf itself. Debian's nginx 1.22 stops at the first worker address:
    the name exists only on the compose network, and `resolve` needs nginx >= 1.27.3 (the image has
    1.28). The upstream block is the file's last, so everything else has been checked by then."""
    result = subprocess.run(
        [NGINX, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(NGINX_CONF)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    first_worker = next(
        n for n, line in enumerate(NGINX_CONF.read_text().splitlines(), 1) if re.match(r"\s*server\s+worker", line)
    )
    if result.returncode == 0:
        return  # an nginx that resolves or defers the names (>= 1.27.3 with `resolve`) accepts all of it
    errors = [line for line in result.stderr.splitlines() if "[emerg]" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].endswith(f"{NGINX_CONF}:{first_worker}"), result.stderr
    assert re.search(r'invalid parameter "resolve"|host not found in upstream "worker1', errors[0]), errors[0]


@pytest.fixture(scope="module")
def stack(keys, tmp_path_factory):
    """Two Daphne workers with the compose environment (a sample .env whose host is 127.0.0.1) and the
    image's Daphne flags, a real redis-server, one SQLite file, and nginx with deploy/nginx.conf."""
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server())
        path = tmp_path_factory.mktemp("db") / "chat.sqlite3"
        dotenv = {
            "DJANGO_SECRET_KEY": "e2e-secret",
            "ALLOWED_HOSTS": "127.0.0.1",
            "JWT_PUBLIC_KEY": one_line(keys[1]),
            "METRICS_TOKEN": METRICS_TOKEN,
        }
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_", "CHAT_"))
        }
        env.update(resolved_environment(services()["worker1"], dotenv))
        # Plain HTTP on loopback, no TLS terminator in front: as README says for trying the stack over HTTP.
        # (test_image_build_and_run_steps_work_on_the_build_context runs the redirect itself.)
        env.update(DATABASE_URL=f"sqlite:///{path}", REDIS_URL=redis.url, SECURE_SSL_REDIRECT="false")
        migrate_argv = [sys.executable if arg == "python" else arg for arg in command_of(services()["migrate"])]
        subprocess.run(migrate_argv, cwd=BASE_DIR, env=env, check=True, timeout=120, stdout=subprocess.DEVNULL)
        worker_a = stack.enter_context(daphne(env, flags=tuple(worker_flags())))
        worker_b = stack.enter_context(daphne(env, flags=tuple(worker_flags())))
        proxy = stack.enter_context(nginx([worker_a, worker_b]))
        yield SimpleStack(proxy, worker_a, worker_b, env, redis.url)


@dataclass
class SimpleStack:
    proxy: Proxy
    worker_a: Server
    worker_b: Server
    env: dict[str, str]
    redis_url: str


METRICS_TOKEN = "scrape-token-for-the-e2e-stack"


def test_metrics_are_served_by_workers_but_never_through_the_proxy(stack):
    """With METRICS_TOKEN set on the workers, Prometheus' request works on a worker's own port; the same
    request, or any spelling of the path nginx normalises, never leaves the proxy."""
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    direct = httpx.get(f"{stack.worker_a.url}/metrics", headers=bearer, timeout=10)
    assert direct.status_code == 200 and "chat_messages_persisted_total" in direct.text
    before = stack.worker_a.log().count("/metrics") + stack.worker_b.log().count("/metrics")
    for path in ("/metrics", "//metrics", "/%6Detrics", "/metrics?format=text"):
        response = httpx.get(f"{stack.proxy.url}{path}", headers=bearer, timeout=10)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found.", "code": "not_found"}), path
    after = stack.worker_a.log().count("/metrics") + stack.worker_b.log().count("/metrics")
    assert after == before, "no worker saw the proxied requests"
    assert re.search(r'"GET /metrics HTTP/1\.1" 404 .* upstream=- ', stack.proxy.access_log())
    assert METRICS_TOKEN not in stack.proxy.access_log() + stack.proxy.error_log()


def mint(keys, proxy: Proxy, sub: str, role: str = "USER") -> str:
    token = mint_token(keys[0], sub, role)
    proxy.tokens.append(token)
    return token


def api(keys, proxy: Proxy, method: str, path: str, sub: str, role: str = "USER", **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {mint(keys, proxy, sub, role)}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{proxy.url}{path}", headers=headers, timeout=30, **kwargs)


def assert_no_token_logged(proxy: Proxy) -> None:
    logs = proxy.access_log() + proxy.error_log()
    assert proxy.tokens, "the test minted no token"
    for token in proxy.tokens:
        assert token not in logs
        assert token.split(".")[2] not in logs  # not even its signature


async def ws_open(keys, proxy: Proxy, conversation: str, sub: str, role: str = "USER", query: str = ""):
    url = f"ws://127.0.0.1:{proxy.port}/ws/conversations/{conversation}?token={mint(keys, proxy, sub, role)}"
    ws = await connect(url + (f"&{query}" if query else ""), open_timeout=FRAME_TIMEOUT_S)
    await ws.send(json.dumps({"type": "ping"}))
    assert await ws_next(ws, "pong")
    return ws


async def ws_next(ws, frame_type: str) -> dict[str, Any]:
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), max(deadline - time.monotonic(), 0.01)))
        if frame["type"] == frame_type:
            return frame


def count(log: str, needle: str) -> int:
    return log.count(needle)


def test_health_through_the_proxy_is_spread_over_both_workers(stack):
    proxy, a, b = stack.proxy, stack.worker_a, stack.worker_b
    before = (count(a.log(), '"GET /health"'), count(b.log(), '"GET /health"'))
    for _ in range(10):
        response = httpx.get(f"{proxy.url}/health", timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "ok"
    after = (count(a.log(), '"GET /health"'), count(b.log(), '"GET /health"'))
    served = (after[0] - before[0], after[1] - before[1])
    assert sum(served) == 10 and min(served) >= 3, f"requests per worker: {served}"
    upstreams = set(re.findall(r"upstream=(\S+)", proxy.access_log()))
    assert {f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"} <= upstreams


def test_the_nginx_health_check_command_reaches_a_worker(stack):
    """compose's probe of the proxy, sent as it is (its Host header, its path) to this proxy's port."""
    test = services()["nginx"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "wget"]
    headers = dict(test[i + 1].split(": ", 1) for i, arg in enumerate(test) if arg == "--header")
    url = test[-1].replace("127.0.0.1:3006", f"127.0.0.1:{stack.proxy.port}")
    assert url != test[-1]
    assert httpx.get(url, headers=headers, timeout=10).status_code == 200


def test_the_client_address_is_the_proxys_view_not_a_forged_header(stack):
    """The request comes from 127.0.0.3 and forges X-Forwarded-For; the workers log 127.0.0.3, so nginx
    replaced the header and Daphne (--proxy-headers) used it."""
    transport = httpx.HTTPTransport(local_address="127.0.0.3")
    with httpx.Client(transport=transport, timeout=10) as client:
        for _ in range(4):
            response = client.get(f"{stack.proxy.url}/health", headers={"X-Forwarded-For": "203.0.113.9"})
            assert response.status_code == 200
    logs = stack.worker_a.log() + stack.worker_b.log()
    assert "127.0.0.3:0" in logs
    assert "203.0.113.9" not in logs


@pytest.mark.asyncio
async def test_websockets_through_the_proxy_reach_both_workers_and_get_rest_writes(stack, keys):
    proxy, a, b = stack.proxy, stack.worker_a, stack.worker_b
    created = await asyncio.to_thread(api, keys, proxy, "POST", "/api/conversations", "donor-p", json={})
    assert created.status_code == 201
    conversation = created.json()["conversationId"]
    path = f"/ws/conversations/{conversation}"
    donor = await ws_open(keys, proxy, conversation, "donor-p")
    agent = await ws_open(keys, proxy, conversation, "agent-p", "ADMIN")
    # least_conn put the two long-lived sockets on different workers.
    assert (count(a.log(), f"WSCONNECT {path}"), count(b.log(), f"WSCONNECT {path}")) == (1, 1)

    await donor.send(json.dumps({"type": "message", "content": "across the proxy"}))
    assert (await ws_next(agent, "message_received"))["content"] == "across the proxy"
    for n in range(2):  # two REST writes: round-robin sends them to both workers
        posted = await asyncio.to_thread(
            api,
            keys,
            proxy,
            "POST",
            f"/api/conversations/{conversation}/messages",
            "agent-p",
            "ADMIN",
            json={"content": f"via REST {n}"},
        )
        assert posted.status_code == 201
        for ws in (donor, agent):  # a REST write has no sending socket: every socket receives it
            assert (await ws_next(ws, "message_received"))["messageId"] == posted.json()["messageId"]
    await donor.close()
    await agent.close()

    access = proxy.access_log()
    assert re.search(rf'"GET {re.escape(path)} HTTP/1.1" 101 ', access), "the handshake is logged, by path"
    assert "token" not in access
    assert_no_token_logged(proxy)


@pytest.mark.asyncio
async def test_a_websocket_with_a_bad_token_is_refused_through_the_proxy(stack, keys):
    created = await asyncio.to_thread(api, keys, stack.proxy, "POST", "/api/conversations", "donor-q", json={})
    conversation = created.json()["conversationId"]
    forged = jwt.encode(
        {"sub": "x", "role": "ADMIN", "exp": int(time.time()) + 900}, generate_rsa_keypair()[0], algorithm="RS256"
    )
    stack.proxy.tokens.append(forged)
    ws = await connect(f"ws://127.0.0.1:{stack.proxy.port}/ws/conversations/{conversation}?token={forged}")
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)
    assert closed.value.rcvd.code == 4401
    assert_no_token_logged(stack.proxy)


def test_a_token_up_to_the_service_limit_passes_the_proxy(stack):
    """nginx's default header buffers (8 KiB) answered a token near JWT_MAX_TOKEN_BYTES with its own HTML
    400; now the service answers: 401 token_invalid, as JSON."""
    token = "e" * (settings.CHAT["JWT_MAX_TOKEN_BYTES"] - 1)
    response = httpx.get(f"{stack.proxy.url}/api/conversations", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["code"]) == (401, "token_invalid")


def test_attachment_uploads_have_their_own_limit_at_the_proxy(stack, keys):
    """The 1 MiB rule is lifted for the upload path only, to the attachment limit plus framing."""
    proxy = stack.proxy
    conversation = api(keys, proxy, "POST", "/api/conversations", "donor-upload", json={}).json()["conversationId"]
    path = f"/api/conversations/{conversation}/attachments"
    text = b"receipt 42\n" * 200_000  # 2.2 MB: over the general limit, within the attachment one
    stored = api(keys, proxy, "POST", path, "donor-upload", files={"file": ("r.txt", text, "text/plain")})
    assert stored.status_code == 201, stored.text
    assert stored.json()["size"] == len(text)
    huge = b"x" * (12 * 1024 * 1024)
    refused = api(keys, proxy, "POST", path, "donor-upload", files={"file": ("h.txt", huge, "text/plain")})
    assert refused.status_code == 413 and "nginx" in refused.text


def test_a_body_over_the_limit_stops_at_the_proxy(stack, keys):
    proxy = stack.proxy
    created = api(keys, proxy, "POST", "/api/conversations", "donor-big", json={})
    conversation = created.json()["conversationId"]
    path = f"/api/conversations/{conversation}/messages"
    worker_logs = stack.worker_a.log() + stack.worker_b.log()
    before = count(worker_logs, f'"POST {path}"')

    body = json.dumps({"content": "x" * (2 * 1024 * 1024)}).encode()
    refused = api(keys, proxy, "POST", path, "donor-big", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 413
    assert "nginx" in refused.text and "request_too_large" not in refused.text  # nginx's page, not the app's
    # Up to the limit the proxy lets bodies through: the application answers (its own 400).
    at_limit = b'{"content": "' + b"y" * (settings.MAX_REQUEST_BODY_BYTES - 15) + b'"}'
    assert len(at_limit) == settings.MAX_REQUEST_BODY_BYTES
    passed = api(keys, proxy, "POST", path, "donor-big", content=at_limit, headers={"Content-Type": "application/json"})
    assert passed.status_code == 400 and passed.json()["code"] == "content_too_long"

    worker_logs = stack.worker_a.log() + stack.worker_b.log()
    assert count(worker_logs, f'"POST {path}"') == before + 1, "only the body within the limit reached a worker"
    history = api(keys, proxy, "GET", path, "donor-big")
    assert history.status_code == 200 and history.json()["results"] == []


def test_admin_login_works_through_the_proxy_behind_tls(stack, tmp_path):
    """A browser behind a TLS terminator that forwards to this proxy: Django must see https and the
    Host with its port, or its CSRF origin check refuses the login form."""
    env = {**stack.env, "DJANGO_SUPERUSER_PASSWORD": "a-long-staff-password-42"}
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "staff1", "--email", "s@x.org"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    proxy = stack.proxy
    origin = f"https://127.0.0.1:{proxy.port}"
    tls = {"X-Forwarded-Proto": "https"}
    form = httpx.get(f"{proxy.url}/admin/login/", headers=tls, timeout=10)
    assert form.status_code == 200
    csrf = form.cookies["csrftoken"]

    def log_in(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{proxy.url}/admin/login/?next=/admin/",
            headers={**headers, "Cookie": f"csrftoken={csrf}"},
            data={
                "csrfmiddlewaretoken": csrf,
                "username": "staff1",
                "password": env["DJANGO_SUPERUSER_PASSWORD"],
                "next": "/admin/",
            },
            timeout=10,
        )

    login = log_in({**tls, "Origin": origin})
    assert login.status_code == 302 and login.headers["location"] == "/admin/", login.text[:500]
    assert "sessionid" in login.cookies
    # Without the terminator's header Django sees http, and the https origin is refused: the header
    # above is what made the difference.
    assert log_in({"Origin": origin}).status_code == 403


@pytest.mark.asyncio
async def test_a_worker_stopping_gracefully_is_routed_around(stack, keys):
    """SIGTERM a worker (what compose sends on stop) while it holds a socket: it exits in time, its
    socket closes, and through the proxy every request and the reconnecting socket reach the other
    worker. Its failures are in nginx's logs; the tokens are not."""
    with daphne(stack.env, flags=tuple(worker_flags())) as leaving, nginx([stack.worker_a, leaving]) as proxy:
        created = await asyncio.to_thread(api, keys, proxy, "POST", "/api/conversations", "donor-f", json={})
        conversation = created.json()["conversationId"]
        path = f"/ws/conversations/{conversation}"
        sockets = [await ws_open(keys, proxy, conversation, "donor-f") for _ in range(2)]
        assert count(leaving.log(), f"WSCONNECT {path}") == 1
        posted = await asyncio.to_thread(
            api,
            keys,
            proxy,
            "POST",
            f"/api/conversations/{conversation}/messages",
            "donor-f",
            json={"content": "before the stop"},
        )
        last_id = posted.json()["messageId"]

        started = time.monotonic()
        leaving.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(leaving.process.wait, 60)
        stopped_in = time.monotonic() - started
        grace = compose_seconds(services()["worker1"]["stop_grace_period"])
        assert stopped_in < grace, f"Daphne took {stopped_in:.1f} s to stop; compose kills it after {grace} s"
        assert code == 0, leaving.log()[-2000:]
        waits = [asyncio.create_task(ws.wait_closed()) for ws in sockets]
        await asyncio.wait(waits, timeout=FRAME_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.5)
        closed = [ws for ws in sockets if ws.state is State.CLOSED]
        assert len(closed) == 1, "the stopped worker's socket is closed, the other one stays open"
        for task in waits:
            task.cancel()

        # The surviving socket holds a connection on the other worker, so least_conn tries the stopped
        # one first: the handshake (token in its URL) goes through nginx's failure path, then succeeds.
        again = await ws_open(keys, proxy, conversation, "donor-f", query=f"lastMessageId={last_id}")
        for _ in range(6):
            health = await asyncio.to_thread(httpx.get, f"{proxy.url}/health", timeout=10)
            assert health.status_code == 200
        sent = await asyncio.to_thread(
            api,
            keys,
            proxy,
            "POST",
            f"/api/conversations/{conversation}/messages",
            "agent-f",
            "ADMIN",
            json={"content": "after the stop"},
        )
        assert sent.status_code == 201
        assert (await ws_next(again, "message_received"))["content"] == "after the stop"
        await again.close()
        for ws in sockets:
            await ws.close()

        # nginx logs a WebSocket when it ends: the reconnection tried the stopped worker, then the other.
        retried = f"upstream=127.0.0.1:{leaving.port}, 127.0.0.1:{stack.worker_a.port} "
        assert any(f"GET {path} " in line and retried in line for line in proxy.access_log().splitlines())
        assert "connect() failed" in proxy.error_log(), "the refused connections are logged (REST paths)"
        assert_no_token_logged(proxy)


def test_no_token_minted_in_this_module_reached_the_proxy_logs(stack):
    assert_no_token_logged(stack.proxy)
