"""A hashedrekord's ``data.hash`` is logged as verifiers re-derive it: lower-case hex, and only
algorithms ``core.digest`` knows for signatures.

Rekor's schema calls the value "a lower case hexadecimal string"; a verifier builds the body it
expects from the artifact's digest in lower case (``formats.rekor`` refuses anything else), so an
upper-case value logged verbatim is an entry nobody can verify, and the same signature logged
twice under two leaves. The log lower-cases the value at intake, so the second submission is a
duplicate (409) and the logged body parses.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from safeguard.core.digest import Digest
from safeguard.formats.rekor import hashedrekord_v001, parse_entry
from safeguard.keys import SoftwareSigner
from safeguard.keys.base import Algorithm
from safeguard.server import SafeguardApp, create_app
from safeguard.tlog.entries import ProposedEntryInvalid, prepare_entry
from tests.unit.tlog.tlog_helpers import b64, hashedrekord

SIGNER = SoftwareSigner.generate()
P384 = SoftwareSigner.generate(Algorithm.ECDSA_P384_SHA384)


def _with_value(request: dict[str, Any], value: str, algorithm: str | None = None) -> Any:
    data = request["spec"]["data"]["hash"]
    data["value"] = value
    if algorithm is not None:
        data["algorithm"] = algorithm
    return request


def _mixed(value: str) -> str:
    return "".join(c.upper() if i % 2 else c for i, c in enumerate(value))


@pytest.mark.parametrize("spell", [str.upper, _mixed])
def test_the_digest_is_logged_in_lower_case(spell: Any) -> None:
    lower = hashedrekord(SIGNER, b"artifact")
    digest = lower["spec"]["data"]["hash"]["value"]
    other = _with_value(copy.deepcopy(lower), spell(digest))
    assert spell(digest) != digest
    a, b = prepare_entry(lower), prepare_entry(other)
    assert b.body == a.body and b.leaf_hash == a.leaf_hash
    assert b.data_hash == f"sha256:{digest}"
    parsed = parse_entry(b.body)  # what a verifier reads: it refused the upper-case form
    assert parsed.artifact_digest == Digest("sha256", digest)


def test_a_p384_digest_is_logged_in_lower_case() -> None:
    digest = hashlib.sha384(b"big").hexdigest()
    signature = P384.sign(b"big")
    request = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha384", "value": digest.upper()}},
            "signature": {
                "content": b64(signature),
                "publicKey": {"content": b64(P384.public_key_pem)},
            },
        },
    }
    prepared = prepare_entry(request)
    expected = hashedrekord_v001(
        Digest.parse(f"sha384:{digest}", algorithms={"sha384"}), signature, P384.public_key_pem
    )
    assert prepared.body == expected
    assert parse_entry(prepared.body).artifact_digest == Digest("sha384", digest)


@pytest.mark.parametrize(
    ("algorithm", "value"),
    [
        ("SHA256", None),  # the schema's enum is lower case
        ("Sha256", None),
        ("sha1", "00" * 20),
        ("md5", "00" * 16),
        ("sha3-256", None),
        ("sha224", "00" * 28),
        ("sha384", None),  # a sha256-length value under sha384
        ("sha256", "zz" * 32),
        ("sha256", "ab" * 31),
        ("sha256", "\u0661" * 64),  # Arabic-Indic digits are not hex
        ("sha256", " " + "ab" * 32),
    ],
)
def test_unknown_algorithms_and_bad_values_are_refused(algorithm: str, value: str | None) -> None:
    request = hashedrekord(SIGNER, b"artifact")
    good = request["spec"]["data"]["hash"]["value"]
    with pytest.raises(ProposedEntryInvalid) as info:
        prepare_entry(_with_value(request, value if value is not None else good, algorithm))
    assert info.value.code == "TLOG_ENTRY_INVALID"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[SafeguardApp]:
    app = create_app(tmp_path / "data", signing=False)
    yield app
    for close in app.closers:
        close()
    app.db.dispose()


@pytest.fixture
async def client(node: SafeguardApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=node)
    async with httpx.AsyncClient(transport=transport, base_url="http://log") as c:
        yield c


@pytest.mark.parametrize("upper_first", [False, True])
async def test_a_duplicate_differing_only_in_hex_case_is_409(
    client: httpx.AsyncClient, upper_first: bool
) -> None:
    lower = hashedrekord(SIGNER, b"twice")
    digest = lower["spec"]["data"]["hash"]["value"]
    upper = _with_value(copy.deepcopy(lower), digest.upper())
    first, second = (upper, lower) if upper_first else (lower, upper)
    created = await client.post("/api/v1/log/entries", json=first)
    assert created.status_code == 201, created.text
    entry_id = next(iter(created.json()))
    again = await client.post("/api/v1/log/entries", json=second)
    assert again.status_code == 409, again.text
    assert again.json()["reason"] == "TLOG_ENTRY_DUPLICATE"
    assert again.headers["location"].endswith(entry_id)
    body = created.json()[entry_id]["body"]
    assert parse_entry(base64.b64decode(body)).artifact_digest == Digest("sha256", digest)
    found = await client.post("/api/v1/index/retrieve", json={"hash": f"sha256:{digest}"})
    assert found.json() == [entry_id]
    bad = await client.post(
        "/api/v1/log/entries", json=_with_value(hashedrekord(SIGNER, b"x"), digest, "SHA256")
    )
    assert bad.status_code == 400
    assert bad.json()["reason"] == "TLOG_ENTRY_INVALID"
