"""The access log never holds a credential sent in a query string (`token`, `access_token`, `jwt`, any
`*_token`, or anything shaped like a JWT), on any path, HTTP or WebSocket, while each request line is still
logged with the value replaced by `[redacted]`. Checked on a real Daphne's whole output."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chatservice.access_log import redact_query_secrets, redacted_details
from chatservice.devkeys import generate_rsa_keypair
from tests.servers import create_conversation, mint, one_worker

FRAME_TIMEOUT_S = 10


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/api/conversations", "/api/conversations"),
        ("/api/conversations?limit=5", "/api/conversations?limit=5"),
        ("/api/x?token=abc", "/api/x?token=[redacted]"),
        ("/api/x?limit=5&access_token=abc&jwt=def", "/api/x?limit=5&access_token=[redacted]&jwt=[redacted]"),
        (
            "/api/attachments/att_1?variant=thumbnail&sig=1abc:xyz",
            "/api/attachments/att_1?variant=thumbnail&sig=[redacted]",
        ),
        ("/h?TOKEN=a&Access-Token=b", "/h?TOKEN=[redacted]&Access-Token=[redacted]"),
        ("/h?%74oken=a&access%5Ftoken=b", "/h?%74oken=[redacted]&access%5Ftoken=[redacted]"),  # as Django decodes
        ("/h?id_token=a;refresh_token=b", "/h?id_token=[redacted];refresh_token=[redacted]"),
        ("/h?token=a&token=b&after=msg_1", "/h?token=[redacted]&token=[redacted]&after=msg_1"),
        ("/h?auth=eyJhbGciOi.eyJzdWIi.c2ln&x=1", "/h?auth=[redacted]&x=1"),  # a JWT under any name
        ("/h?token", "/h?token"),  # no value, nothing to hide
        ("/h?token=", "/h?token=[redacted]"),
        ("/h?notatoken=1&tokens=2", "/h?notatoken=1&tokens=2"),
    ],
)
def test_secret_query_values_are_redacted(target, logged):
    assert redact_query_secrets(target) == logged


def test_details_without_a_path_are_left_alone():
    assert redacted_details({"client": "1.2.3.4:5"}) == {"client": "1.2.3.4:5"}
    assert redacted_details({"path": "/a?jwt=x", "status": 200}) == {"path": "/a?jwt=[redacted]", "status": 200}


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


@pytest.fixture(scope="module")
def server(keys, tmp_path_factory):
    with one_worker(keys[1].decode(), tmp_path_factory.mktemp("db") / "chat.sqlite3") as running:
        yield running


def lines_with(log: str, fragment: str) -> list[str]:
    return [line for line in log.splitlines() if fragment in line]


@pytest.mark.asyncio
async def test_no_query_string_credential_reaches_a_real_daphnes_output(server, keys):
    secrets = {name: f"SECRET-{name}-7f3a" for name in ("t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9")}
    good = mint(keys[0], "u1")
    conversation = await asyncio.to_thread(create_conversation, server, keys[0], "u1")
    bearer = {"Authorization": f"Bearer {good}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        # REST, wrongly carrying tokens in the query (with and without a real bearer header).
        listed = await client.get(f"/api/conversations?token={secrets['t1']}&limit=5", headers=bearer)
        assert listed.status_code == 200
        refused = await client.get(f"/api/conversations?access_token={secrets['t2']}&jwt={secrets['t3']}")
        assert refused.status_code == 401
        history = f"/api/conversations/{conversation}/messages"
        assert (await client.get(f"{history}?jwt={good}", headers=bearer)).status_code == 200
        # Service endpoints and unknown paths.
        assert (await client.get(f"/health?token={secrets['t4']}")).status_code == 200
        assert (await client.get(f"/nowhere?%74oken={secrets['t5']}&ACCESS_TOKEN={secrets['t6']}")).status_code == 404
    # WebSockets: the token the socket authenticates with, and tokens under the other names.
    url = f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation}"
    async with ws_connect(f"{url}?token={good}&access_token={secrets['t7']}&client=web") as ws:
        await ws.send('{"type": "ping"}')
        assert json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)) == {"type": "pong"}
    async with ws_connect(f"{url}?token={secrets['t8']}") as refused_ws:  # not a JWT: closed 4401
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(refused_ws.recv(), FRAME_TIMEOUT_S)
    with pytest.raises(InvalidStatus):  # no such route: refused during the handshake
        await ws_connect(f"ws://127.0.0.1:{server.port}/ws/nowhere?jwt={secrets['t9']}")
    await asyncio.sleep(0.5)  # the disconnect lines are written after the sockets close

    log = server.log()  # stdout (the access log) and stderr (the JSON records) together
    for secret in [*secrets.values(), good, good.split(".")[-1]]:
        assert secret not in log
    # Each request is still logged, by its request line, with the values redacted.
    assert lines_with(log, '"GET /api/conversations?token=[redacted]&limit=5" 200 ')
    assert lines_with(log, '"GET /api/conversations?access_token=[redacted]&jwt=[redacted]" 401 ')
    assert lines_with(log, f'"GET {history}?jwt=[redacted]" 200 ')
    assert lines_with(log, '"GET /health?token=[redacted]" 200 ')
    assert lines_with(log, '"GET /nowhere?%74oken=[redacted]&ACCESS_TOKEN=[redacted]" 404 ')
    for event in ("WSCONNECTING", "WSCONNECT", "WSDISCONNECT"):
        assert lines_with(log, f'"{event} /ws/conversations/{conversation}"'), event
    assert not re.search(r"\?[^\s\"]*=(?!\[redacted\])[^&\s\"]*SECRET", log)


def test_a_request_refused_for_its_headers_is_logged_without_its_query(server):
    huge = "eyJ" + "a" * 40_000
    response = httpx.get(f"{server.url}/api/conversations?token={huge}", timeout=30)
    assert response.status_code == 431
    refused = httpx.get(f"{server.url}/api/conversations?access_token=abc", headers={"X-Big": "b" * 17_000})
    assert refused.status_code == 431
    log = server.log()
    assert huge[:40] not in log and "access_token=abc" not in log
    assert lines_with(log, '"GET /api/conversations?[truncated]" 431 ')
    assert lines_with(log, '"GET /api/conversations?access_token=[redacted]" 431 ')
