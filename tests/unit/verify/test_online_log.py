"""The online log check against the real log app, in process: a clean log passes and records what
was checked; a rewritten entry, a truncated log, a fork at the same and at a larger size, a
checkpoint by another key, a remembered checkpoint the log went back from, hostile answers and an
unreachable log are each refused with their named reason (or raise ``TLOG_UNREACHABLE``)."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from safeguard.core.digest import Digest
from safeguard.core.errors import EXIT_UNREACHABLE, InvalidInput
from safeguard.formats.bundle import Bundle, TransparencyLogEntry
from safeguard.keys import SoftwareSigner
from safeguard.keys.base import load_public_key, public_key_der
from safeguard.server import SafeguardApp, create_app
from safeguard.signing.sign import sign_blob
from safeguard.tlog.client import parse_log_entry
from safeguard.tlog.logkey import key_details
from safeguard.tlog.monitor import MonitorState
from safeguard.tlog.trustroot import trusted_root
from safeguard.verify.checks import Artifact
from safeguard.verify.engine import verify_bundle
from safeguard.verify.errors import CheckFailed
from safeguard.verify.online_log import OnlineLogCheck, OnlineLogUnreachable
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.trustroot import TrustMaterial, parse_trusted_root
from safeguard.verify.verdict import Verdict
from tests.unit.verify.tlog_tamper import rewrite_entry, truncate

SIGNER = SoftwareSigner.generate()
URL = "http://testserver"
Edit = Callable[[str, int, bytes], tuple[int, bytes]]
Message = dict[str, Any]


class Tamper:
    """The real log app behind a proxy that may rewrite any answer (path, status, body)."""

    def __init__(self, app: SafeguardApp, edit: Edit) -> None:
        self.app = app
        self.edit = edit

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, body = self.edit(scope["path"], start["status"], b"".join(chunks))
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


def _untouched(path: str, status: int, body: bytes) -> tuple[int, bytes]:
    return status, body


@contextmanager
def log(data: Path, edit: Edit = _untouched) -> Iterator[TestClient]:
    app = create_app(data)
    try:
        with TestClient(Tamper(app, edit)) as client:  # type: ignore[arg-type]
            yield client
    finally:
        for close in app.closers:
            close()
        app.db.dispose()


def sign(client: TestClient, data: bytes) -> bytes:
    def hook(proposed: bytes) -> TransparencyLogEntry:
        answer = client.post(
            "/api/v1/log/entries", content=proposed, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 201, answer.text
        return parse_log_entry(answer.json())[1]

    return sign_blob(data, SIGNER, tlog=hook).to_json()


def trust_of(client: TestClient) -> TrustMaterial:
    key = load_public_key(client.get("/api/v1/log/publicKey").content)
    doc = trusted_root(
        "http://safeguard", public_key_der(key), key_details(key), datetime(2020, 1, 1, tzinfo=UTC)
    )
    return parse_trusted_root(json.dumps(doc).encode())


def verify(
    client: TestClient,
    bundle: bytes,
    data: bytes,
    trust: TrustMaterial,
    *,
    state: Path | None = None,
    ignore_tlog: bool = False,
) -> Verdict:
    policy = TrustPolicy(keys=(SIGNER.public_key,), trust=trust, ignore_tlog=ignore_tlog)
    online = OnlineLogCheck(URL, trust, state_path=state, client=client, retries=1, lag_grace=0.01)
    with online:
        return verify_bundle(bundle, Artifact(Digest.of(data), data, "f"), policy, online=online)


def refused(verdict: Verdict) -> tuple[str, str]:
    assert not verdict.allowed, verdict.reasons
    item = verdict.evidence[0]
    return item["code"], item["reason"]


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, TrustMaterial, list[bytes]]:
    """A log of five blob signatures: (data dir, trust, bundles)."""
    data = tmp_path / "log"
    with log(data) as client:
        bundles = [sign(client, b"blob %d" % i) for i in range(5)]
        return data, trust_of(client), bundles


def test_clean_log_passes_and_records_what_was_checked(
    signed: tuple[Path, TrustMaterial, list[bytes]],
) -> None:
    data, trust, bundles = signed
    with log(data) as client:
        verdict = verify(client, bundles[1], b"blob 1", trust)
        assert verdict.allowed, verdict.reasons
        item = verdict.evidence[0]
        online = item["tlog"][0]["online"]
        assert online["url"] == URL and online["treeSize"] == 5
        assert online["bundleTreeSize"] == 2 and online["inclusionTreeSize"] == 5
        assert online["entry"] == "unchanged"
        assert item["detail"]["onlineLog"]["treeSize"] == 5
        assert "log entry 1 checked online at http://testserver (tree size 5)" in item["reason"]
        # Offline, nothing is fetched and nothing about the log's present is claimed.
        policy = TrustPolicy(keys=(SIGNER.public_key,), trust=trust)
        offline = verify_bundle(bundles[1], Artifact(Digest.of(b"blob 1"), b"blob 1"), policy)
        assert offline.allowed and "online" not in offline.evidence[0]["tlog"][0]


def test_rewritten_entry(signed: tuple[Path, TrustMaterial, list[bytes]]) -> None:
    data, trust, bundles = signed
    # The log now claims entry 2 recorded another artifact's digest.
    old, new = (Digest.of(b).hex.encode() for b in (b"blob 2", b"evil"))
    rewrite_entry(data, 2, body=lambda body: body.replace(old, new))
    rewrite_entry(data, 3, integrated_time=1)
    with log(data) as client:
        code, reason = refused(verify(client, bundles[2], b"blob 2", trust))
        assert code == "TLOG_ENTRY_REWRITTEN" and "body differs" in reason
        code, reason = refused(verify(client, bundles[3], b"blob 3", trust))
        assert code == "TLOG_ENTRY_REWRITTEN" and "integrated time is 1" in reason
        assert verify(client, bundles[4], b"blob 4", trust).allowed  # the others are intact


def test_truncated_log_is_rolled_back(signed: tuple[Path, TrustMaterial, list[bytes]]) -> None:
    data, trust, bundles = signed
    truncate(data, 3)
    with log(data) as client:
        code, reason = refused(verify(client, bundles[3], b"blob 3", trust))
        assert code == "TLOG_ROLLED_BACK" and "went back from size 4 to 3" in reason
        # An entry the truncated log still holds, with a checkpoint it still extends, passes.
        assert verify(client, bundles[1], b"blob 1", trust).allowed


def test_forked_copy(tmp_path: Path, signed: tuple[Path, TrustMaterial, list[bytes]]) -> None:
    data, trust, _ = signed
    fork = tmp_path / "fork"
    shutil.copytree(data, fork)  # same key, same tree ID, same origin
    with log(data) as client:
        bundle = sign(client, b"main")
    with log(fork) as client:
        sign(client, b"fork")
        code, reason = refused(verify(client, bundle, b"main", trust))
        assert code == "TLOG_FORKED" and "two different signed checkpoints of size 6" in reason
        sign(client, b"more")
        code, reason = refused(verify(client, bundle, b"main", trust))
        assert code == "TLOG_FORKED" and "not an extension" in reason


def test_log_state_remembers_a_larger_tree(
    tmp_path: Path, signed: tuple[Path, TrustMaterial, list[bytes]]
) -> None:
    data, trust, bundles = signed
    state = tmp_path / "log-state.json"
    with log(data) as client:
        assert verify(client, bundles[0], b"blob 0", trust, state=state).allowed
    saved = MonitorState.load(state)
    assert saved is not None and saved.tree_size == 5 and saved.url == URL
    truncate(data, 3)
    with log(data) as client:
        # Entry 0 (checkpoint of size 1) is still there, but the log went back from what was seen.
        code, reason = refused(verify(client, bundles[0], b"blob 0", trust, state=state))
        assert code == "TLOG_ROLLED_BACK" and str(state) in reason
        assert verify(client, bundles[0], b"blob 0", trust).allowed  # without the state: passes
    reloaded = MonitorState.load(state)
    assert reloaded is not None and reloaded.tree_size == 5  # never moves back
    # A state file of another log's key is a usage error.
    other = tmp_path / "other.json"
    MonitorState(URL, "x", SoftwareSigner.generate().public_key_pem.decode(), 1, "00" * 32,
                 "", "").save(other)  # fmt: skip
    with pytest.raises(InvalidInput, match="does not list"):
        OnlineLogCheck(URL, trust, state_path=other)


def _flip_signature(body: bytes) -> bytes:
    doc = json.loads(body)
    text, _, sig_line = doc["signedTreeHead"].rstrip("\n").rpartition("\n")
    prefix, _, b64 = sig_line.rpartition(" ")
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    doc["signedTreeHead"] = f"{text}\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    return json.dumps(doc).encode()


def _wrong_hash(body: bytes) -> bytes:
    doc = json.loads(body)
    doc["hashes"][0] = "00" * 32
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("path", "body", "code", "words"),
    [
        ("/api/v1/log", _flip_signature, "TLOG_CHECKPOINT_INVALID", "not signed by the key"),
        ("/api/v1/log", lambda b: b"<html>", "TLOG_CHECKPOINT_INVALID", "no readable"),
        ("/api/v1/log", lambda b: b'{"signedTreeHead": 7}', "TLOG_CHECKPOINT_INVALID", "no read"),
        ("/api/v1/log/entries", lambda b: b"[]", "TLOG_ENTRY_REWRITTEN", "no longer serves it"),
        ("/api/v1/log/entries", lambda b: b"{" * 5000, "TLOG_ENTRY_REWRITTEN", "no longer"),
        ("/api/v1/log/proof", lambda b: b'{"hashes": 1}', "TLOG_FORKED", "not an extension"),
        ("/api/v1/log/proof", _wrong_hash, "TLOG_FORKED", "not an extension"),
    ],
)
def test_hostile_answers(
    signed: tuple[Path, TrustMaterial, list[bytes]],
    path: str,
    body: Callable[[bytes], bytes],
    code: str,
    words: str,
) -> None:
    data, trust, bundles = signed

    def edit(at: str, status: int, answer: bytes) -> tuple[int, bytes]:
        return (status, body(answer)) if at == path else (status, answer)

    with log(data, edit) as client:
        got, reason = refused(verify(client, bundles[1], b"blob 1", trust))
        assert got == code and words in reason, reason


def test_swapped_entry_and_missing_entry(signed: tuple[Path, TrustMaterial, list[bytes]]) -> None:
    data, trust, bundles = signed
    with log(data) as client:
        other = client.get("/api/v1/log/entries", params={"logIndex": 0}).content

    def swap(at: str, status: int, answer: bytes) -> tuple[int, bytes]:
        return (200, other) if at == "/api/v1/log/entries" else (status, answer)

    with log(data, swap) as client:
        code, reason = refused(verify(client, bundles[1], b"blob 1", trust))
        assert code == "TLOG_ENTRY_REWRITTEN" and "answered entry 0" in reason

    def gone(at: str, status: int, answer: bytes) -> tuple[int, bytes]:
        return (
            (404, b'{"code":404,"message":"gone"}') if at.endswith("entries") else (status, answer)
        )

    with log(data, gone) as client:
        code, reason = refused(verify(client, bundles[1], b"blob 1", trust))
        assert code == "TLOG_ENTRY_REWRITTEN" and "answered 404" in reason


def test_entry_with_a_set_only(signed: tuple[Path, TrustMaterial, list[bytes]]) -> None:
    """cosign's legacy annotation carries no proof: the entry itself is compared, and the tree
    must still hold its index."""
    data, trust, bundles = signed
    entry = replace(
        Bundle.from_json(bundles[4]).verification_material.tlog_entries[0], inclusion_proof=None
    )
    with log(data) as client, OnlineLogCheck(URL, trust, client=client) as online:
        assert online.check_entry(entry)["entry"] == "unchanged"
    truncate(data, 4)
    with log(data) as client, OnlineLogCheck(URL, trust, client=client) as online:
        with pytest.raises(CheckFailed, match="no longer holds it") as caught:
            online.check_entry(entry)
        assert caught.value.reason_code == "TLOG_ROLLED_BACK"


def test_unreachable_and_failing_log(signed: tuple[Path, TrustMaterial, list[bytes]]) -> None:
    data, trust, bundles = signed
    policy = TrustPolicy(keys=(SIGNER.public_key,), trust=trust)
    artifact = Artifact(Digest.of(b"blob 1"), b"blob 1")
    online = OnlineLogCheck("http://127.0.0.1:9", trust, retries=0)
    with online, pytest.raises(OnlineLogUnreachable) as caught:
        verify_bundle(bundles[1], artifact, policy, online=online)
    assert caught.value.code == "TLOG_UNREACHABLE" and caught.value.exit_code == EXIT_UNREACHABLE

    def down(at: str, status: int, answer: bytes) -> tuple[int, bytes]:
        return 503, b"busy"

    with log(data, down) as client, pytest.raises(OnlineLogUnreachable, match="answered 503"):
        verify(client, bundles[1], b"blob 1", trust)

    def not_a_log(at: str, status: int, answer: bytes) -> tuple[int, bytes]:
        return 404, b"404 page not found"

    with log(data, not_a_log) as client, pytest.raises(OnlineLogUnreachable, match="no Rekor"):
        verify(client, bundles[1], b"blob 1", trust)


def test_usage_and_unlogged_signatures(signed: tuple[Path, TrustMaterial, list[bytes]]) -> None:
    data, trust, bundles = signed
    empty = replace(trust, tlogs=())
    with pytest.raises(InvalidInput, match="lists the log's key"):
        OnlineLogCheck(URL, empty)
    with pytest.raises(InvalidInput, match="not an http"):
        OnlineLogCheck("ftp://log", trust)
    with log(data) as client:
        # Log entries ignored offline cannot be vouched for online.
        code, _ = refused(verify(client, bundles[1], b"blob 1", trust, ignore_tlog=True))
        assert code == "TLOG_MISSING"
        # Signatures refused offline are not checked online (and keep their reason).
        wrong = verify(client, bundles[1], b"blob 2", trust)
        assert refused(wrong)[0] == "DIGEST_MISMATCH"


def test_a_lagging_answer_is_read_again(tmp_path: Path) -> None:
    """A replica that still serves an older (genuine) checkpoint once is not a rollback; one
    that keeps serving it is."""
    data = tmp_path / "log"
    with log(data) as client:
        sign(client, b"first")
        old = client.get("/api/v1/log").content
        bundle = sign(client, b"second")
        trust = trust_of(client)
    answers: list[bytes] = []

    def lagging(times: int) -> Edit:
        def edit(at: str, status: int, answer: bytes) -> tuple[int, bytes]:
            if at == "/api/v1/log":
                answers.append(answer)
                if len(answers) <= times:
                    return status, old
            return status, answer

        return edit

    with log(data, lagging(1)) as client:
        assert verify(client, bundle, b"second", trust).allowed
    assert len(answers) == 2
    answers.clear()
    with log(data, lagging(2)) as client:
        code, reason = refused(verify(client, bundle, b"second", trust))
        assert code == "TLOG_ROLLED_BACK" and "went back from size 2 to 1" in reason
