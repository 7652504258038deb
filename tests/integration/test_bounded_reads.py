"""Network answers are read in bounded chunks: a hostile server's endless (chunked, or under a huge
Content-Length) body is refused near the limit with a typed error, by the transparency-log client,
the online log check and the registry token flow; the same clients still read ordinary answers.

``server.sent`` shows how much the server managed to write before the client hung up: well under
the server's cap (96 MiB), which is what an unbounded read would have consumed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from safeguard.core.errors import RegistryError, SafeguardError
from safeguard.httpbounded import read_bounded, with_body
from safeguard.keys.base import public_key_pem
from safeguard.oci.client import RegistryClient
from safeguard.tlog.client import (
    MAX_RESPONSE_BYTES,
    PUBLIC_KEY_PATH,
    LogResponseInvalid,
    LogUnreachable,
    RekorClient,
)
from safeguard.verify.online_log import LOG_INFO_PATH, LogAnswerInvalid, LogReader
from tests.fixtures.endless import EndlessServer, Route, run_endless_server

# What a bounded reader may let through past its limit: a chunk plus the kernel's socket buffers.
SLACK = 24 * 1024 * 1024
JSON = {"content-type": "application/json"}


@pytest.fixture
def server() -> Iterator[EndlessServer]:
    with run_endless_server() as running:
        yield running


class TooBig(SafeguardError):
    code = "TOO_BIG"


def test_read_bounded_helper(server: EndlessServer) -> None:
    server.routes["/ok"] = Route(body=b'{"fine": true}', headers=JSON)
    server.routes["/endless"] = Route(endless="chunked")
    server.routes["/declared"] = Route(endless="declared")
    limit = 1024 * 1024
    with httpx.Client(base_url=server.url) as http:
        with http.stream("GET", "/ok") as response:
            body = read_bounded(response, limit, TooBig)
            copy = with_body(response, body)
        assert body == b'{"fine": true}' and copy.json() == {"fine": True}
        assert copy.headers["content-type"] == "application/json"
        for path in ("/endless", "/declared"):
            with http.stream("GET", path) as response, pytest.raises(TooBig):
                read_bounded(response, limit, TooBig)
        with http.stream("GET", "/endless") as response:
            assert len(read_bounded(response, limit, TooBig, truncate=True)) == limit
    deadline = time.monotonic() + 5
    while len(server.sent) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.sent["/endless"] < limit + SLACK
    assert server.sent["/declared"] < limit + SLACK


def _wait_sent(server: EndlessServer, path: str) -> int:
    deadline = time.monotonic() + 5
    while path not in server.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.sent[path]


@pytest.mark.parametrize("endless", ["chunked", "declared"])
def test_tlog_client_refuses_endless_answers(server: EndlessServer, endless: str) -> None:
    pem = public_key_pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    server.routes[PUBLIC_KEY_PATH] = Route(body=pem, headers={"content-type": "text/plain"})
    with RekorClient(server.url, retries=0) as client:
        assert public_key_pem(client.public_key()) == pem
    server.routes[PUBLIC_KEY_PATH] = Route(endless=endless, headers={"content-type": "text/plain"})
    server.sent.clear()
    with RekorClient(server.url, retries=0) as client, pytest.raises(LogResponseInvalid) as info:
        client.public_key()
    assert "exceeds" in info.value.message
    assert _wait_sent(server, PUBLIC_KEY_PATH) < MAX_RESPONSE_BYTES + SLACK
    # A retryable status with an endless body is cut too, then reported as unreachable.
    server.routes[PUBLIC_KEY_PATH] = Route(503, endless=endless)
    server.sent.clear()
    with RekorClient(server.url, retries=0) as client, pytest.raises(LogUnreachable):
        client.public_key()
    assert _wait_sent(server, PUBLIC_KEY_PATH) < MAX_RESPONSE_BYTES + SLACK


@pytest.mark.parametrize("endless", ["chunked", "declared"])
def test_online_log_reader_refuses_endless_answers(server: EndlessServer, endless: str) -> None:
    server.routes[LOG_INFO_PATH] = Route(
        body=json.dumps({"signedTreeHead": "note\n"}).encode(), headers=JSON
    )
    reader = LogReader(server.url, retries=0)
    try:
        assert reader.signed_tree_head() == b"note\n"
        server.routes[LOG_INFO_PATH] = Route(endless=endless, headers=JSON)
        server.sent.clear()
        with pytest.raises(LogAnswerInvalid, match="exceeds"):
            reader.signed_tree_head()
    finally:
        reader.close()
    assert _wait_sent(server, LOG_INFO_PATH) < MAX_RESPONSE_BYTES + SLACK


@pytest.mark.parametrize("endless", ["chunked", "declared"])
def test_registry_token_flow_refuses_endless_token(server: EndlessServer, endless: str) -> None:
    challenge = f'Bearer realm="{server.url}/token",service="endless"'
    server.routes["/v2/"] = Route(401, {"www-authenticate": challenge, **JSON}, b"{}")
    server.routes["/v2/#auth=Bearer good-token"] = Route(body=b"{}", headers=JSON)
    server.routes["/token"] = Route(body=b'{"token": "good-token"}', headers=JSON)

    async def ping() -> None:
        async with RegistryClient(server.host, credentials=None, allow_insecure=True) as client:
            await client.ping()

    asyncio.run(ping())
    server.routes["/token"] = Route(endless=endless, headers=JSON)
    server.sent.clear()
    with pytest.raises(RegistryError, match="more than") as info:
        asyncio.run(ping())
    assert "token service" in info.value.message
    assert _wait_sent(server, "/token") < 1024 * 1024 + SLACK
