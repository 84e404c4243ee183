"""Tokens that must be refused whatever their signature: time claims that are not JSON numbers, and
tokens over JWT_MAX_TOKEN_BYTES (checked before any decoding). Refused alike over REST (401
token_invalid) and WebSocket (4401), since both go through principal_from_token. Over a real Daphne, a
request whose headers exceed the HTTP layer's limit is answered (431 JSON) instead of dropped."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import jwt
import pytest
from channels.testing import WebsocketCommunicator
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chatservice.asgi import application
from chatservice.authentication import TokenError, principal_from_token
from chatservice.config import HTTP_MAX_HEADER_BYTES, JWT_MAX_TOKEN_BYTES, ConfigError, load_config
from chatservice.devkeys import generate_rsa_keypair
from conversations import services as conversation_services
from tests.helpers import USER
from tests.servers import create_conversation, daphne, migrate, one_worker, server_env

LIST = "/api/conversations"
DEFAULT_MAX = JWT_MAX_TOKEN_BYTES[0]
FRAME_TIMEOUT_S = 10
PUBLIC_PEM = generate_rsa_keypair()[1].decode()
PROD = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "s", "ALLOWED_HOSTS": "h", "JWT_PUBLIC_KEY": PUBLIC_PEM}


def signed(private_pem: bytes, **claims: Any) -> str:
    """A token signed with `private_pem` carrying exactly `claims` (PyJWT's encode would convert datetimes
    but leaves every other value, strings included, as given)."""
    return jwt.encode({"sub": "u1", "role": "USER", **claims}, private_pem, algorithm="RS256")


def padded(private_pem: bytes, size: int) -> str:
    """A valid token (good signature, future exp) of `size` bytes, or at most 2 fewer (unpadded base64url
    has no length of the form 4n+1), grown with a claim of its own."""
    exp = int(time.time()) + 600
    pad = "x" * max(0, (size - len(signed(private_pem, exp=exp, pad=""))) * 3 // 4)
    token = signed(private_pem, exp=exp, pad=pad)
    while len(token) > size:
        pad = pad[:-1]
        token = signed(private_pem, exp=exp, pad=pad)
    while len(signed(private_pem, exp=exp, pad=pad + "x")) <= size:
        pad += "x"
        token = signed(private_pem, exp=exp, pad=pad)
    assert size - 2 <= len(token) <= size, (len(token), size)
    return token


def call(client, token: str) -> tuple[int, dict]:
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get(LIST)
    return response.status_code, response.json()


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    return APIClient()


# ---- configuration ---------------------------------------------------------------------------------


def test_max_token_bytes_defaults_to_8192_and_is_read_from_the_environment():
    assert load_config(PROD).jwt_max_token_bytes == 8192
    assert load_config({**PROD, "JWT_MAX_TOKEN_BYTES": "4096"}).jwt_max_token_bytes == 4096
    assert load_config({**PROD, "JWT_MAX_TOKEN_BYTES": ""}).jwt_max_token_bytes == 8192


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("lots", r"JWT_MAX_TOKEN_BYTES='lots' is not an integer"),
        ("100", r"JWT_MAX_TOKEN_BYTES=100 is out of range \(1024\.\.12288\)"),
        ("65536", r"JWT_MAX_TOKEN_BYTES=65536 is out of range \(1024\.\.12288\)"),
    ],
)
def test_a_bad_max_token_bytes_stops_start_up_with_one_line(raw, message):
    with pytest.raises(ConfigError, match=message) as refused:
        load_config({**PROD, "JWT_MAX_TOKEN_BYTES": raw})
    assert "\n" not in str(refused.value)


# ---- time claims -----------------------------------------------------------------------------------

FUTURE = 9_999_999_999


@pytest.mark.django_db
@pytest.mark.parametrize(
    "claims",
    [
        {"exp": str(FUTURE)},  # the probe's token: PyJWT alone converts it with int() and accepts it
        {"exp": f" {FUTURE} "},
        {"exp": FUTURE, "nbf": "0"},
        {"exp": FUTURE, "iat": "0"},
        {"exp": True},  # a bool is no number, though int(True) == 1
        {"exp": "1"},  # a string in the past: token_invalid, not token_expired
    ],
)
def test_time_claims_that_are_not_json_numbers_are_refused_over_rest(api, keypair, claims):
    status, body = call(api, signed(keypair[0], **claims))
    assert (status, body["code"], body["detail"]) == (401, "token_invalid", "Token is invalid.")


@pytest.mark.parametrize(
    "claims", [{"exp": FUTURE, "nbf": None}, {"exp": FUTURE, "iat": [1]}, {"exp": float("nan")}, {"exp": None}]
)
def test_other_time_claims_that_are_no_dates_stay_refused(keypair, claims):
    with pytest.raises(TokenError) as refused:
        principal_from_token(signed(keypair[0], **claims))
    assert refused.value.code == "token_invalid"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "claims",
    [
        {"exp": FUTURE},
        {"exp": FUTURE + 0.5},  # a NumericDate may be fractional
        {"exp": FUTURE, "nbf": 0, "iat": int(time.time())},
        {"exp": FUTURE, "nbf": 0.25, "iat": time.time()},
    ],
)
def test_numeric_time_claims_are_accepted(api, keypair, claims):
    status, _ = call(api, signed(keypair[0], **claims))
    assert status == 200


@pytest.mark.django_db
def test_an_expired_numeric_token_is_still_token_expired(api, keypair):
    status, body = call(api, signed(keypair[0], exp=int(time.time()) - 120))
    assert (status, body["code"]) == (401, "token_expired")


async def socket_close_code(conversation_id: str, token: str) -> int | None:
    """The code the socket is closed with at once, or None when it is let in (it answers a ping)."""
    communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}?token={token}")
    connected, _ = await communicator.connect(timeout=FRAME_TIMEOUT_S)
    assert connected
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    output = await communicator.receive_output(timeout=FRAME_TIMEOUT_S)
    await communicator.disconnect()
    if output["type"] == "websocket.close":
        return output["code"]
    assert json.loads(output["text"]) == {"type": "pong"}, output
    return None


@pytest.fixture
def conversation(transactional_db):
    return conversation_services.conversation_create(creator=USER, subject="Tokens")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_websocket_with_a_string_expiry_is_closed_4401(conversation, keypair):
    assert await socket_close_code(conversation.pk, signed(keypair[0], exp=str(FUTURE))) == 4401
    assert await socket_close_code(conversation.pk, signed(keypair[0], exp=FUTURE, nbf="0")) == 4401
    # The same token with a numeric exp is let in.
    assert await socket_close_code(conversation.pk, signed(keypair[0], exp=FUTURE)) is None


# ---- token size ------------------------------------------------------------------------------------


def test_a_token_over_the_maximum_is_refused_before_decoding(keypair):
    at_limit = padded(keypair[0], DEFAULT_MAX)
    assert principal_from_token(at_limit).user_id == "u1"  # a valid token up to the limit is fine
    over = padded(keypair[0], DEFAULT_MAX + 10)
    with pytest.raises(TokenError) as refused:
        principal_from_token(over)  # validly signed, unexpired: refused for its size alone
    assert (refused.value.code, refused.value.detail) == ("token_invalid", f"Token is longer than {DEFAULT_MAX} bytes.")
    with pytest.raises(TokenError, match="longer than"):
        principal_from_token("a" * 100_000)


def test_a_non_ascii_token_is_invalid(keypair):
    with pytest.raises(TokenError) as refused:
        principal_from_token(signed(keypair[0], exp=FUTURE) + "é")
    assert refused.value.detail == "Token is invalid."


@pytest.mark.django_db
def test_an_oversized_authorization_header_is_401_token_invalid_with_a_clear_detail(api, keypair):
    status, body = call(api, padded(keypair[0], DEFAULT_MAX + 500))
    assert (status, body) == (401, {"detail": f"Token is longer than {DEFAULT_MAX} bytes.", "code": "token_invalid"})
    status, body = call(api, "x" * 100_000)  # in-process there is no HTTP layer to stop it first
    assert (status, body["code"]) == (401, "token_invalid")


@pytest.mark.django_db
def test_the_maximum_follows_the_setting(api, keypair, settings):
    token = padded(keypair[0], DEFAULT_MAX + 500)
    settings.CHAT = {**settings.CHAT, "JWT_MAX_TOKEN_BYTES": DEFAULT_MAX + 1000}
    assert call(api, token)[0] == 200
    settings.CHAT = {**settings.CHAT, "JWT_MAX_TOKEN_BYTES": 2048}
    assert call(api, padded(keypair[0], 2100))[1]["detail"] == "Token is longer than 2048 bytes."


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_websocket_token_over_the_maximum_is_closed_4401(conversation, keypair):
    assert await socket_close_code(conversation.pk, padded(keypair[0], DEFAULT_MAX + 10)) == 4401
    assert await socket_close_code(conversation.pk, padded(keypair[0], DEFAULT_MAX)) is None


# ---- a real Daphne ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_keys() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


@pytest.fixture(scope="module")
def server(server_keys, tmp_path_factory):
    with one_worker(server_keys[1].decode(), tmp_path_factory.mktemp("db") / "chat.sqlite3") as running:
        yield running


HEADERS_TOO_LARGE = {
    "detail": f"Request line and headers are larger than {HTTP_MAX_HEADER_BYTES} bytes.",
    "code": "request_headers_too_large",
}


@pytest.mark.parametrize("size", [100_000, 20_000, 1_000_000])
def test_daphne_answers_a_huge_authorization_header_with_431_json(server, size):
    """Twisted dropped the connection without a word for a header line over 16 KiB."""
    response = httpx.get(f"{server.url}{LIST}", headers={"Authorization": "Bearer " + "a" * size}, timeout=30)
    assert response.status_code == 431
    assert response.headers["content-type"] == "application/json"
    assert response.json() == HEADERS_TOO_LARGE
    assert response.headers["connection"] == "close"


def test_daphne_answers_headers_too_large_in_total_with_431_json(server):
    """Many headers, none too long by itself: Twisted answered a bare 400 with no body."""
    headers = {f"X-Filler-{n}": "f" * 1000 for n in range(20)}
    response = httpx.get(f"{server.url}/health", headers=headers, timeout=30)
    assert (response.status_code, response.json()) == (431, HEADERS_TOO_LARGE)


def test_the_client_reads_the_431_while_it_is_still_sending(server):
    """A raw client that writes 2 MB of header and only then reads gets the answer, not a reset."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(b"GET /api/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ")
        conn.sendall(b"a" * 2_000_000)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body) == HEADERS_TOO_LARGE


def test_requests_on_one_kept_alive_connection_are_each_measured_alone(server):
    """Six requests of 10 KB of headers each on one connection: 60 KB in all, but none is over the limit."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(6):
            response = client.get("/health", headers={"X-Filler": "f" * 10_000})
            assert response.status_code == 200
        assert client.get("/health", headers={"X-Filler": "f" * 17_000}).status_code == 431


def test_daphne_answers_a_token_between_the_limits_with_401(server, server_keys):
    token = padded(server_keys[0], DEFAULT_MAX + 10)
    response = httpx.get(f"{server.url}{LIST}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 401
    assert response.json() == {"detail": f"Token is longer than {DEFAULT_MAX} bytes.", "code": "token_invalid"}
    # The same service keeps answering on new connections, and a normal token works.
    ok = httpx.get(f"{server.url}{LIST}", headers={"Authorization": f"Bearer {signed(server_keys[0], exp=FUTURE)}"})
    assert ok.status_code == 200


@pytest.mark.asyncio
async def test_daphne_websocket_tokens_over_the_limits(server, server_keys):
    conversation = await asyncio.to_thread(create_conversation, server, server_keys[0], "u1")
    url = f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation}"
    # Over JWT_MAX_TOKEN_BYTES but within the HTTP layer: the handshake completes, then 4401.
    async with ws_connect(f"{url}?token={padded(server_keys[0], DEFAULT_MAX + 10)}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)
    assert closed.value.rcvd.code == 4401
    # Over the HTTP layer's limit: the handshake itself is answered 431.
    with pytest.raises(InvalidStatus) as refused:
        await ws_connect(f"{url}?token={'a' * 100_000}")
    assert refused.value.response.status_code == 431
    assert json.loads(refused.value.response.body) == HEADERS_TOO_LARGE


def test_the_largest_token_the_setting_allows_is_answered_by_the_application(server_keys, tmp_path):
    """JWT_MAX_TOKEN_BYTES at its maximum, with the headers a browser sends: the HTTP layer lets it through."""
    largest = str(JWT_MAX_TOKEN_BYTES[2])
    env = server_env(server_keys[1].decode(), f"sqlite:///{tmp_path / 'chat.sqlite3'}", JWT_MAX_TOKEN_BYTES=largest)
    migrate(env)
    browser = {
        "User-Agent": "Mozilla/5.0 " + "u" * 300,
        "Accept": "application/json",
        "Accept-Language": "en-GB,en;q=0.9",
        "Cookie": "c=" + "k" * 1500,
        "Referer": "https://donate.example.org/" + "r" * 500,
    }
    with daphne(env) as running:
        token = padded(server_keys[0], JWT_MAX_TOKEN_BYTES[2])
        response = httpx.get(f"{running.url}{LIST}", headers={**browser, "Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        too_long = padded(server_keys[0], JWT_MAX_TOKEN_BYTES[2] + 10)
        response = httpx.get(f"{running.url}{LIST}", headers={**browser, "Authorization": f"Bearer {too_long}"})
        assert (response.status_code, response.json()["code"]) == (401, "token_invalid")
