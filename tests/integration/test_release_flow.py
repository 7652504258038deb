"""The release-engineer flow end to end: ``safeguard release enroll|sign|uses`` with the key on a
SoftHSM2 token standing in for the engineer's hardware token, its PIN, real TOTP codes from the
enrolment, the node's transparency log in the store, and the built-in registry.

Every refusal with its reason: missing, wrong and reused TOTP codes, lockout, wrong PIN, no PIN,
a ticket that does not match, a repository outside mayPublish, a token no release-engineer
identity holds, a token key that is not the registered one, no enrolment.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core.digest import Digest
from safeguard.formats.cosign_sig import parse_signature_manifest, signature_tag
from safeguard.keys.pkcs11 import PKCS11Signer
from safeguard.oci.client import RegistryClient
from safeguard.policy import PolicyStore
from safeguard.signing import totp
from safeguard.store import default_database_url, open_database
from safeguard.tlog.logkey import load_or_create
from safeguard.tlog.service import TransparencyLog
from tests.fixtures import softhsm
from tests.fixtures.distribution import RegistryServer
from tests.unit.oci.artifacts import image, push
from tests.unit.signing.env import RELEASE_PIN, SigningHSM, policy_text
from tests.unit.signing.env import signing_hsm as make_hsm

pytestmark = pytest.mark.skipif(not softhsm.available(), reason="SoftHSM2/OpenSC not installed")
runner = CliRunner()
ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningHSM]:
    with make_hsm(tmp_path_factory.mktemp("hsm")) as env:
        yield env


def cli(data: Path, *args: str, env: dict[str, str | None] | None = None) -> Any:
    result = runner.invoke(
        app,
        [*args, "--data-dir", str(data)],
        env={"COSIGN_PKCS11_PIN": RELEASE_PIN, **(env or {})},
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def node(hsm: SigningHSM, tmp_path: Path, policy: str | None = None) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    db = open_database(default_database_url(data))
    try:
        text = policy or policy_text(hsm, ISSUER, registry="127.0.0.1:*")
        PolicyStore(db).apply(text, "test", base_dir=tmp_path)
    finally:
        db.dispose()
    return data


def enrol(data: Path, *extra: str) -> bytes:
    result = cli(data, "release", "enroll", "--name", "jdoe", "-o", "json", *extra)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["identity"] == "release-engineer-jdoe"
    secret = parse_qs(urlsplit(doc["otpauthUri"]).query)["secret"][0]
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def new_image(server: RegistryServer, team: str = "firmware") -> str:
    repo = f"{team}/fw-{uuid.uuid4().hex[:8]}"
    art = image()

    async def go() -> None:
        async with RegistryClient(server.host) as client:
            await push(client, repo, art, "v1")

    asyncio.run(go())
    return f"{server.host}/{repo}@{art.digest}"


def release(data: Path, hsm: SigningHSM, ref: str, *args: str, **kw: Any) -> Any:
    return cli(data, "release", "sign", "--token", hsm.release_uri(), *args, ref, **kw)


def code_at(secret: bytes, offset_steps: int = 0) -> str:
    return totp.totp(secret, time.time() + 30 * offset_steps)


def test_enrol_sign_and_list_uses(
    hsm: SigningHSM, builtin_registry: RegistryServer, tmp_path: Path
) -> None:
    data = node(hsm, tmp_path)
    secret = enrol(data)
    assert cli(data, "release", "enroll", "--name", "jdoe").exit_code == 2  # already enrolled
    ref = new_image(builtin_registry)

    signed = release(data, hsm, ref, "--ticket", "REL-123", "--totp", code_at(secret), "-o", "json")
    assert signed.exit_code == 0, signed.output
    info = json.loads(signed.stdout)
    assert info["identity"] == "release-engineer-jdoe" and info["engineer"] == "jdoe"
    assert info["ticket"] == "REL-123" and len(info["logIndexes"]) == 2
    with PKCS11Signer(hsm.release_uri(), pin=RELEASE_PIN) as token:
        assert info["keyId"] == token.key_id

    # The ticket and the engineer are signed into the statement and the legacy payload, and the
    # entries are in the node's log.
    digest = Digest.parse(ref.rsplit("@", 1)[1])

    async def legacy_layer() -> Any:
        host, _, repo = ref.split("@")[0].partition("/")
        async with RegistryClient(host) as client:
            raw = (await client.manifests.get(repo, signature_tag(digest))).raw
            layer = parse_signature_manifest(raw).layers[0]
            return await client.blobs.get(repo, layer.payload_digest)

    payload = json.loads(asyncio.run(legacy_layer()))
    assert payload["optional"]["safeguard.dev/ticket"] == "REL-123"
    assert payload["optional"]["safeguard.dev/release-engineer"] == "jdoe"
    db = open_database(default_database_url(data))
    try:
        log = TransparencyLog(db, load_or_create(None, data))
        assert all(log.entry_by_index(i) for i in info["logIndexes"])
        log.close()
    finally:
        db.dispose()

    # A second use in the next time step works; reusing either code does not.
    replay = release(data, hsm, ref, "--ticket", "REL-124", "--totp", code_at(secret))
    assert replay.exit_code == 1 and "RELEASE_TOTP_REPLAYED" in replay.stderr
    again = release(data, hsm, ref, "--ticket", "REL-124", "--totp", code_at(secret, 1))
    assert again.exit_code == 0, again.output
    older = release(data, hsm, ref, "--ticket", "REL-125", "--totp", code_at(secret, -1))
    assert older.exit_code == 1 and "RELEASE_TOTP_REPLAYED" in older.stderr

    uses = json.loads(cli(data, "release", "uses", "-o", "json").stdout)
    assert [u["ticket"] for u in uses] == ["REL-124", "REL-123"]
    assert all(u["engineer"] == "jdoe" and u["decision"] == "allowed" for u in uses)
    assert all(len(u["logIndexes"]) == 2 and u["digest"] == str(digest) for u in uses)
    everything = json.loads(cli(data, "release", "uses", "--all", "-o", "json").stdout)
    assert [u["code"] for u in everything][:2] == ["RELEASE_TOTP_REPLAYED", "SIGNED"]
    text = cli(data, "release", "uses")
    assert "REL-123" in text.stdout and "jdoe" in text.stdout


def test_refusals_each_with_its_reason(
    hsm: SigningHSM, builtin_registry: RegistryServer, tmp_path: Path
) -> None:
    data = node(hsm, tmp_path)
    ref = new_image(builtin_registry)
    not_enrolled = release(data, hsm, ref, "--ticket", "REL-1", "--totp", "123456")
    assert not_enrolled.exit_code == 2 and "RELEASE_NOT_ENROLLED" in not_enrolled.stderr
    secret = enrol(data)

    missing = release(data, hsm, ref, "--ticket", "REL-1")
    assert missing.exit_code == 2 and "RELEASE_TOTP_REQUIRED" in missing.stderr
    ticket = release(data, hsm, ref, "--ticket", "urgent", "--totp", code_at(secret))
    assert ticket.exit_code == 2 and "RELEASE_TICKET_INVALID" in ticket.stderr
    outside = release(data, hsm, new_image(builtin_registry, "team-a"), "--ticket", "REL-1",
                      "--totp", code_at(secret))  # fmt: skip
    assert outside.exit_code == 1 and "SIGNING_NOT_AUTHORIZED" in outside.stderr
    other_token = cli(data, "release", "sign", "--token", hsm.key_ref("team-a"), "--ticket",
                      "REL-1", "--totp", code_at(secret), ref)  # fmt: skip
    assert other_token.exit_code == 1 and "RELEASE_IDENTITY_NOT_FOUND" in other_token.stderr
    wrong_pin = release(data, hsm, ref, "--ticket", "REL-1", "--totp", code_at(secret),
                        env={"COSIGN_PKCS11_PIN": "0000"})  # fmt: skip
    assert wrong_pin.exit_code == 2 and "PKCS11_PIN_INVALID" in wrong_pin.stderr
    no_pin = release(data, hsm, ref, "--ticket", "REL-1", "--totp", code_at(secret),
                     env={"COSIGN_PKCS11_PIN": None})  # fmt: skip
    assert no_pin.exit_code == 2 and "RELEASE_PIN_REQUIRED" in no_pin.stderr
    # None of those consumed the code: it still signs.
    ok = release(data, hsm, ref, "--ticket", "REL-1", "--totp", code_at(secret))
    assert ok.exit_code == 0, ok.output

    wrong = totp.hotp(secret, totp.counter_at(time.time()) + 5)  # a real code, wrong time
    for attempt in range(5):
        bad = release(data, hsm, ref, "--ticket", "REL-1", "--totp", wrong)
        assert bad.exit_code == 1 and "RELEASE_TOTP_INVALID" in bad.stderr, attempt
    locked = release(data, hsm, ref, "--ticket", "REL-1", "--totp", code_at(secret, 1))
    assert locked.exit_code == 1 and "RELEASE_TOTP_LOCKED" in locked.stderr

    refused = json.loads(cli(data, "release", "uses", "--all", "-o", "json").stdout)
    codes = [u["code"] for u in reversed(refused)]
    assert codes[:8] == [
        "RELEASE_NOT_ENROLLED",
        "RELEASE_TOTP_REQUIRED",
        "RELEASE_TICKET_INVALID",
        "SIGNING_NOT_AUTHORIZED",
        "RELEASE_IDENTITY_NOT_FOUND",
        "PKCS11_PIN_INVALID",
        "RELEASE_PIN_REQUIRED",
        "SIGNED",
    ]
    assert codes[-1] == "RELEASE_TOTP_LOCKED"
    # Re-enrolling (an administrator's --force) unlocks with a new secret.
    fresh = enrol(data, "--force")
    assert fresh != secret
    assert release(data, hsm, ref, "--ticket", "REL-2", "--totp", code_at(fresh)).exit_code == 0


def test_token_key_must_be_the_registered_one(
    hsm: SigningHSM, builtin_registry: RegistryServer, tmp_path: Path
) -> None:
    with PKCS11Signer(hsm.key_ref("spare")) as other:
        (tmp_path / "jdoe.pub").write_bytes(other.public_key_pem)
    extra = "      - name: jdoe-key\n        publicKey: jdoe.pub\n"
    text = policy_text(
        hsm, ISSUER, registry="127.0.0.1:*", extra_keys=extra, release_key="jdoe-key"
    )
    data = node(hsm, tmp_path, text)
    secret = enrol(data)
    result = release(data, hsm, new_image(builtin_registry), "--ticket", "REL-9", "--totp",
                     code_at(secret))  # fmt: skip
    assert result.exit_code == 1
    assert "not the key the policy registers" in " ".join(result.stderr.split())


def test_enrol_needs_a_release_identity(hsm: SigningHSM, tmp_path: Path) -> None:
    data = node(hsm, tmp_path)
    result = cli(data, "release", "enroll", "--name", "team-a-release")
    assert result.exit_code == 1 and "RELEASE_IDENTITY_NOT_FOUND" in result.stderr
    assert "release-engineer-jdoe" in result.stderr
