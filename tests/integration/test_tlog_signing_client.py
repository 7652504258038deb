"""``safeguard.tlog.client.RekorClient`` against the real log, and against hostile or failing
answers made from the real log's answers by a proxy in between (an ``httpx`` transport that
forwards to ``safeguard serve`` and then tampers): each gives its typed error, never a bundle
entry that would not verify, never a traceback."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput
from safeguard.formats import dsse, rekor
from safeguard.keys import SoftwareSigner
from safeguard.keys.base import public_key_pem
from safeguard.tlog.client import (
    EntryRejected,
    LogResponseInvalid,
    LogResponseUntrusted,
    LogUnreachable,
    RekorClient,
    parse_log_entry,
)
from safeguard.tlog.merkle import leaf_hash
from tests.integration.test_tlog_signing import LogServer, start_log_server

Mutate = Callable[[httpx.Request, httpx.Response], httpx.Response]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogServer]:
    yield from start_log_server(tmp_path_factory.mktemp("tlog-client"))


@pytest.fixture(scope="module")
def signer() -> SoftwareSigner:
    return SoftwareSigner.generate()


def proposal(signer: SoftwareSigner, data: bytes | None = None) -> bytes:
    data = data if data is not None else Path(__file__).read_bytes() + signer.key_id.encode()
    return rekor.hashedrekord_v001(Digest.of(data), signer.sign(data), signer.public_key_pem)


def proxied(server: LogServer, mutate: Mutate, *, retries: int = 0) -> RekorClient:
    """A client whose every request reaches the real log and whose answers pass ``mutate``."""
    real = httpx.Client(base_url=server.url, timeout=30)

    def handler(request: httpx.Request) -> httpx.Response:
        forwarded = real.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.content,
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        response = httpx.Response(
            forwarded.status_code, headers=forwarded.headers, content=forwarded.content
        )
        return mutate(request, response)

    return RekorClient(
        server.url, transport=httpx.MockTransport(handler), retries=retries, backoff=0
    )


def edit_entry(
    response: httpx.Response, change: Callable[[dict[str, object]], None]
) -> httpx.Response:
    doc = response.json()
    ((_, anon),) = doc.items()
    change(anon)
    return httpx.Response(response.status_code, json=doc)


def flip_b64(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_submit_and_resubmit(server: LogServer, signer: SoftwareSigner) -> None:
    proposed = proposal(signer)
    with RekorClient(server.url) as client:
        first = client.submit(proposed)
        again = client.submit(proposed)
        assert first.created and not again.created
        assert first.uuid == again.uuid == leaf_hash(first.entry.canonicalized_body).hex()
        assert first.entry.log_index == again.entry.log_index
        assert first.checkpoint_names == (server.registry.host,)
        assert client.note_name_warning() is None
        uuid, fetched = client.get_entry(first.uuid)
        assert uuid == first.uuid and fetched.canonicalized_body == proposed
        with pytest.raises(EntryRejected, match="404"):
            client.get_entry("0" * 64)
        with pytest.raises(InvalidInput):
            client.get_entry("../../etc")
    # A DSSE envelope is logged as dsse 0.0.1, the log computing the canonical body.
    envelope = dsse.sign("application/vnd.in-toto+json", b'{"x":1}', signer.sign)
    with RekorClient(server.url) as client:
        entry = client(rekor.dsse_v001_request(envelope.to_json(), signer.public_key_pem))
    assert (entry.kind, entry.version) == ("dsse", "0.0.1")
    assert entry.canonicalized_body == rekor.dsse_v001(envelope.to_json(), signer.public_key_pem)


def test_retry_after_a_lost_answer_resolves_the_existing_entry(
    server: LogServer, signer: SoftwareSigner
) -> None:
    """The first POST is logged but its answer is lost (503); the retry answers 409."""
    calls: list[int] = []

    def lose_first(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        calls.append(response.status_code)
        if len(calls) == 1:
            return httpx.Response(503, json={"code": 503, "message": "overloaded"})
        return response

    with proxied(server, lose_first, retries=2) as client:
        submission = client.submit(proposal(signer))
    assert calls[:2] == [201, 409] and not submission.created


def test_log_unavailable_is_unreachable(server: LogServer, signer: SoftwareSigner) -> None:
    def always_503(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        return httpx.Response(503, json={"code": 503, "message": "down for maintenance"})

    with proxied(server, always_503, retries=1) as client, pytest.raises(LogUnreachable) as err:
        client.submit(proposal(signer))
    assert err.value.exit_code == 3 and "down for maintenance" in err.value.message

    def timeout(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with proxied(server, timeout) as client, pytest.raises(LogUnreachable, match="timed out"):
        client.submit(proposal(signer))


def test_log_refusal_carries_the_logs_message(server: LogServer, signer: SoftwareSigner) -> None:
    """The proxy corrupts the signature on the way in: the real log answers 400."""
    real = httpx.Client(base_url=server.url)

    def corrupt(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method != "POST":
            return response
        doc = json.loads(request.content)
        doc["spec"]["signature"]["content"] = flip_b64(doc["spec"]["signature"]["content"])
        answer = real.post("/api/v1/log/entries", json=doc)
        return httpx.Response(answer.status_code, content=answer.content)

    with proxied(server, corrupt) as client, pytest.raises(EntryRejected) as err:
        client.submit(proposal(signer))
    assert err.value.exit_code == 2
    assert "400" in err.value.message and "TLOG_ENTRY_SIGNATURE_INVALID" in err.value.message


def _other_entry(server: LogServer, signer: SoftwareSigner) -> dict[str, object]:
    with RekorClient(server.url) as client:
        uuid = client.submit(proposal(signer, b"another artifact")).uuid
    doc: dict[str, object] = httpx.get(f"{server.url}/api/v1/log/entries/{uuid}").json()
    return doc


HOSTILE: dict[str, tuple[Mutate, type[Exception]]] = {
    "not-json": (lambda q, r: httpx.Response(201, content=b"<html>"), LogResponseInvalid),
    "two-entries": (
        lambda q, r: httpx.Response(201, json={**r.json(), "0" * 64: {}}),
        LogResponseInvalid,
    ),
    "not-a-uuid": (
        lambda q, r: httpx.Response(201, json={"nope": next(iter(r.json().values()))}),
        LogResponseInvalid,
    ),
    "wrong-uuid": (
        lambda q, r: httpx.Response(201, json={"a" * 64: next(iter(r.json().values()))}),
        LogResponseUntrusted,
    ),
    "no-checkpoint": (
        lambda q, r: edit_entry(r, lambda a: a["verification"]["inclusionProof"].pop("checkpoint")),
        LogResponseInvalid,
    ),
    "bad-body": (
        lambda q, r: edit_entry(r, lambda a: a.update(body="e30=")),
        LogResponseInvalid,
    ),
    "set": (
        lambda q, r: edit_entry(
            r,
            lambda a: a["verification"].update(
                signedEntryTimestamp=flip_b64(a["verification"]["signedEntryTimestamp"])
            ),
        ),
        LogResponseUntrusted,
    ),
    "root-hash": (
        lambda q, r: edit_entry(
            r,
            lambda a: a["verification"]["inclusionProof"].update(rootHash="00" * 32),
        ),
        LogResponseUntrusted,
    ),
    "log-id": (
        lambda q, r: edit_entry(r, lambda a: a.update(logID="ab" * 32)),
        LogResponseUntrusted,
    ),
    "huge": (
        lambda q, r: httpx.Response(201, content=b" " * (9 * 1024 * 1024)),
        LogResponseInvalid,
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_answers(server: LogServer, signer: SoftwareSigner, name: str) -> None:
    mutate, error = HOSTILE[name]

    def only_posts(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        return mutate(request, response) if request.method == "POST" else response

    with proxied(server, only_posts) as client, pytest.raises(error):
        client.submit(proposal(signer))


def test_answer_for_another_entry_is_untrusted(server: LogServer, signer: SoftwareSigner) -> None:
    """A log answering with a genuine, valid entry, but not the one submitted."""
    other = _other_entry(server, signer)

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        return httpx.Response(201, json=other) if request.method == "POST" else response

    with proxied(server, swap) as client, pytest.raises(LogResponseUntrusted, match="another"):
        client.submit(proposal(signer))


def test_pinned_key_and_bad_urls(server: LogServer, signer: SoftwareSigner) -> None:
    other = SoftwareSigner.generate()
    pinned = RekorClient(server.url, public_key=other.public_key)
    with pinned as client, pytest.raises(LogResponseUntrusted, match="log ID"):
        client.submit(proposal(signer))
    with pytest.raises(InvalidInput):
        RekorClient("ftp://127.0.0.1/")
    with pytest.raises(InvalidInput):
        RekorClient("http://127.0.0.1/?q=1")

    def garbage_key(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith("/publicKey"):
            return httpx.Response(200, content=b"not a key")
        return response

    with proxied(server, garbage_key) as client, pytest.raises(LogResponseInvalid, match="key"):
        client.submit(proposal(signer))
    # Our own bad signature never reaches the log.
    data = b"x"
    bad = rekor.hashedrekord_v001(
        Digest.of(data), other.sign(data), public_key_pem(signer.public_key)
    )
    with RekorClient(server.url) as client, pytest.raises(InvalidInput):
        client.submit(bad)


def test_parse_log_entry_rejects_shapes() -> None:
    for doc in (None, [], {}, {"a" * 64: []}, {"a" * 64: {"body": 1}}):
        with pytest.raises(LogResponseInvalid):
            parse_log_entry(doc)
