"""Which signatures the gateway counts, in-process (``create_app`` with gateway settings, the
built-in registry behind it, requests through ``httpx.ASGITransport``):

* ``mayPublish`` globs naming another registry do not make an identity a signer here;
* a trust root's ``tlog`` is enforced: a signature counts only with an entry of that log;
* ``retiredAt``/``revokedAt`` of the policy and the store's custody records (``safeguard keys
  retire/revoke``) are judged at the log's integrated time: two signatures one second apart, the
  key retired (or revoked) at the second one's log time; without a log, a retired key is refused.

A signature is attached around the gateway (straight into the built-in registry, as a referrer
holding a Sigstore bundle), then the tag push through the gateway is judged by the rule
``team-a/**`` (``unsignedPush: reject``). Log entries come from a real log service object
(``safeguard.tlog.service.TransparencyLog`` over its own SQLite store) named ``safeguard``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.core.reference import Reference
from safeguard.formats import dsse
from safeguard.formats.bundle import dsse_bundle
from safeguard.formats.intoto import PAYLOAD_TYPE
from safeguard.gateway.app import GatewayApp
from safeguard.gateway.config import GatewaySettings
from safeguard.keys.base import public_key_pem
from safeguard.keys.software import SoftwareSigner
from safeguard.oci.signatures import COSIGN_SIGN_PREDICATE, attach_bundle
from safeguard.server import SafeguardApp, create_app
from safeguard.signing.custody import KeyCustody
from safeguard.signing.material import InProcessLog, sign_signature
from safeguard.signing.sign import cosign_sign_statement
from safeguard.store import default_database_url, open_database
from safeguard.tlog.logkey import load_or_create
from safeguard.tlog.service import LogConfig, TransparencyLog
from tests.fixtures.builtin import OCI_MANIFEST, image_manifest

LISTEN = "127.0.0.1:5000"


@dataclass
class Node:
    app: SafeguardApp
    client: httpx.AsyncClient

    @property
    def gateway(self) -> GatewayApp:
        assert isinstance(self.app.v2, GatewayApp)
        return self.app.v2


@asynccontextmanager
async def running(
    tmp_path: Path, policy: str, files: dict[str, bytes], **settings: Any
) -> AsyncIterator[Node]:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir(exist_ok=True)
    for name, data in files.items():
        (policy_dir / name).write_bytes(data)
    (policy_dir / "safeguard.yaml").write_text(policy)
    options: dict[str, Any] = {"listen": LISTEN, **settings}
    app = create_app(
        tmp_path / "data",
        gateway=GatewaySettings(policy_file=policy_dir / "safeguard.yaml", **options),
        signing=False,
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Node(app, client)
    finally:
        for stop in app.shutdowns:
            await stop()
        app.db.dispose()


@dataclass
class Image:
    repository: str
    raw: bytes
    descriptor: Descriptor
    config: bytes


def new_image(repository: str) -> Image:
    """An image manifest (config only) that no other test has."""
    config = json.dumps({"os": "linux", "n": uuid.uuid4().hex}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    descriptor = {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config)}
    raw = image_manifest(descriptor, [])
    return Image(repository, raw, Descriptor(OCI_MANIFEST, Digest.of(raw), len(raw)), config)


async def push(node: Node, image: Image) -> Image:
    """``image`` pushed through the gateway by digest (always allowed), not yet tagged."""
    config_digest = "sha256:" + hashlib.sha256(image.config).hexdigest()
    response = await node.client.post(
        f"/v2/{image.repository}/blobs/uploads/?digest={config_digest}", content=image.config
    )
    assert response.status_code == 201, response.text
    response = await node.client.put(
        f"/v2/{image.repository}/manifests/{image.descriptor.digest}",
        content=image.raw,
        headers={"content-type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    return image


async def push_image(node: Node, repository: str) -> Image:
    return await push(node, new_image(repository))


def signature_bundle(signer: SoftwareSigner, image: Image) -> bytes:
    """An unlogged signature (as ``cosign sign --tlog-upload=false`` makes)."""
    envelope = dsse.sign(PAYLOAD_TYPE, cosign_sign_statement(image.descriptor.digest), signer.sign)
    return dsse_bundle(envelope, public_key_hint=signer.key_id).to_json()


@dataclass
class Log:
    service: TransparencyLog
    sink: InProcessLog

    @property
    def public_key_pem(self) -> bytes:
        return public_key_pem(self.service.key.public_key)


@contextmanager
def transparency_log(directory: Path) -> Iterator[Log]:
    directory.mkdir(parents=True, exist_ok=True)
    db = open_database(default_database_url(directory))
    service = TransparencyLog(db, load_or_create(None, directory), LogConfig(durable=False))
    try:
        yield Log(service, InProcessLog(service))
    finally:
        service.close()
        db.dispose()


@dataclass
class Logged:
    bundle: bytes
    log_time: datetime


async def logged_bundle(signer: SoftwareSigner, image: Image, log: Log) -> Logged:
    """A signature logged as the signing service logs it (dsse entry with SET and proof)."""
    ref = Reference("registry.internal", image.repository, None, image.descriptor.digest)
    material = await sign_signature(signer, ref, {}, log.sink, legacy=False)
    assert material.integrated_time is not None
    when = datetime.fromtimestamp(material.integrated_time, UTC)
    return Logged(material.bundle.to_json(), when)


async def one_second_apart(
    signer: SoftwareSigner, first: Image, second: Image, log: Log
) -> tuple[Logged, Logged]:
    a = await logged_bundle(signer, first, log)
    await asyncio.sleep(max(0.0, a.log_time.timestamp() + 1 - time.time()) + 0.05)
    b = await logged_bundle(signer, second, log)
    assert b.log_time > a.log_time
    return a, b


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def audit_reason(node: Node, image: Image) -> str:
    response = await node.client.get(
        "/_safeguard/gateway/audit", params={"repository": image.repository}
    )
    assert response.status_code == 200, response.text
    pushes = [e for e in response.json()["events"] if e["action"] == "push"]
    return str(pushes[0]["reason"])


async def attach(node: Node, image: Image, bundle_json: bytes) -> None:
    """Attach a signature around the gateway, straight into the registry behind it."""
    await attach_bundle(
        node.gateway.upstream.client(),
        image.repository,
        image.descriptor,
        bundle_json,
        predicate_type=COSIGN_SIGN_PREDICATE,
    )


async def tag(node: Node, image: Image, name: str = "v1") -> httpx.Response:
    return await node.client.put(
        f"/v2/{image.repository}/manifests/{name}",
        content=image.raw,
        headers={"content-type": OCI_MANIFEST},
    )


def policy_text(
    identities: str, trust_root: str = "", signers: str = "[]", a_times: str = ""
) -> str:
    return f"""apiVersion: safeguard.dev/v1
kind: Policy
trustRoots:
  internal:
    keys:
      - {{name: a, ref: keys/a.key, publicKey: a.pub{a_times}}}
      - {{name: b, ref: keys/b.key, publicKey: b.pub}}
{trust_root}identities:
{identities}registries:
  - match: "team-a/**"
    unsignedPush: reject
    signers: {signers}
"""


def identity(name: str, key: str, may_publish: str) -> str:
    return f"""  - name: {name}
    trustRoot: internal
    key: {key}
    oidc: {{issuer: https://token.example.test, repository: org/{name}}}
    mayPublish: ["{may_publish}"]
"""


# -- mayPublish and the registry the gateway fronts -------------------------------------------


async def test_may_publish_on_another_registry_does_not_sign_here(tmp_path: Path) -> None:
    a, b = SoftwareSigner.generate(), SoftwareSigner.generate()
    policy = policy_text(
        identity("elsewhere", "a", "ghcr.io/team-a/**")
        + identity("other-port", "b", "127.0.0.1:5001/team-a/**")
    )
    files = {"a.pub": a.public_key_pem, "b.pub": b.public_key_pem}
    async with running(tmp_path, policy, files) as node:
        for signer in (a, b):
            image = await push_image(node, f"team-a/{uuid.uuid4().hex[:8]}")
            await attach(node, image, signature_bundle(signer, image))
            refused = await tag(node, image)
            assert refused.status_code == 403, refused.text
            assert "unsigned push refused" in refused.text


async def test_may_publish_on_this_registry_signs_here(tmp_path: Path) -> None:
    a, b, c = SoftwareSigner.generate(), SoftwareSigner.generate(), SoftwareSigner.generate()
    policy = policy_text(
        identity("by-address", "a", f"{LISTEN}/team-a/**")
        + identity("by-public-url", "b", "registry.internal/team-a/**")
    )
    files = {"a.pub": a.public_key_pem, "b.pub": b.public_key_pem}
    async with running(tmp_path, policy, files, public_url="https://registry.internal") as node:
        for signer in (a, b):
            image = await push_image(node, f"team-a/{uuid.uuid4().hex[:8]}")
            await attach(node, image, signature_bundle(signer, image))
            allowed = await tag(node, image)
            assert allowed.status_code == 201, allowed.text
        stranger = await push_image(node, "team-a/stranger")
        await attach(node, stranger, signature_bundle(c, stranger))
        assert (await tag(node, stranger)).status_code == 403


# -- the trust root's log, and key lifecycle at the log's time ------------------------------------

TLOG_ROOT = "    tlog: {url: https://safeguard, publicKey: tlog.pub}\n"
TEAM_A = identity("team-a-release", "a", "team-a/**")


async def test_a_trust_root_with_a_log_needs_an_entry_of_that_log(tmp_path: Path) -> None:
    a = SoftwareSigner.generate()
    with (
        transparency_log(tmp_path / "log") as log,
        transparency_log(tmp_path / "other-log") as other,
    ):
        files = {"a.pub": a.public_key_pem, "b.pub": a.public_key_pem}
        files["tlog.pub"] = log.public_key_pem
        async with running(tmp_path, policy_text(TEAM_A, TLOG_ROOT), files) as node:
            unlogged = await push_image(node, "team-a/unlogged")
            await attach(node, unlogged, signature_bundle(a, unlogged))
            assert (await tag(node, unlogged)).status_code == 403
            assert "TLOG_MISSING" in await audit_reason(node, unlogged)

            elsewhere = await push_image(node, "team-a/elsewhere")
            await attach(node, elsewhere, (await logged_bundle(a, elsewhere, other)).bundle)
            assert (await tag(node, elsewhere)).status_code == 403
            assert "TLOG_UNKNOWN_LOG" in await audit_reason(node, elsewhere)

            logged = await push_image(node, "team-a/logged")
            await attach(node, logged, (await logged_bundle(a, logged, log)).bundle)
            allowed = await tag(node, logged)
            assert allowed.status_code == 201, allowed.text
            assert "logged" in await audit_reason(node, logged)


async def test_retired_at_is_judged_at_the_log_time(tmp_path: Path) -> None:
    a = SoftwareSigner.generate()
    with transparency_log(tmp_path / "log") as log:
        first, second = new_image("team-a/x"), new_image("team-a/y")
        before, after = await one_second_apart(a, first, second, log)
        times = f", retiredAt: {rfc3339(after.log_time)}"
        policy = policy_text(TEAM_A, TLOG_ROOT, a_times=times)
        async with running(tmp_path, policy, _files(a, log)) as node:
            for image, signed in ((first, before), (second, after)):
                await push(node, image)
                await attach(node, image, signed.bundle)
            assert (await tag(node, first)).status_code == 201
            refused = await tag(node, second)
            assert refused.status_code == 403
            reason = await audit_reason(node, second)
            assert "KEY_RETIRED" in reason and "internal/a retired at" in reason


async def test_revoked_at_flags_earlier_and_refuses_later(tmp_path: Path) -> None:
    a = SoftwareSigner.generate()
    with transparency_log(tmp_path / "log") as log:
        first, second = new_image("team-a/x"), new_image("team-a/y")
        before, after = await one_second_apart(a, first, second, log)
        times = f", revokedAt: {rfc3339(after.log_time)}, revocationReason: leaked"
        policy = policy_text(TEAM_A, TLOG_ROOT, a_times=times)
        async with running(tmp_path, policy, _files(a, log)) as node:
            for image, signed in ((first, before), (second, after)):
                await push(node, image)
                await attach(node, image, signed.bundle)
            assert (await tag(node, first)).status_code == 201  # logged before: counts...
            assert "KEY_REVOKED_REVIEW" in await audit_reason(node, first)  # ...flagged
            assert (await tag(node, second)).status_code == 403
            reason = await audit_reason(node, second)
            assert "KEY_REVOKED" in reason and "leaked" in reason


async def test_store_custody_records_apply_too(tmp_path: Path) -> None:
    a = SoftwareSigner.generate()
    with transparency_log(tmp_path / "log") as log:
        policy = policy_text(TEAM_A, TLOG_ROOT)
        async with running(tmp_path, policy, _files(a, log)) as node:
            first, second = await push_image(node, "team-a/x"), await push_image(node, "team-a/y")
            before, after = await one_second_apart(a, first, second, log)
            custody = KeyCustody(node.app.db)
            custody.register("team-a-2026", a.public_key_pem, actor="ops")
            custody.retire("team-a-2026", at=after.log_time, actor="ops", reason="rotated")
            for image, signed in ((first, before), (second, after)):
                await attach(node, image, signed.bundle)
            assert (await tag(node, first)).status_code == 201
            assert (await tag(node, second)).status_code == 403
            reason = await audit_reason(node, second)
            assert "KEY_RETIRED" in reason and "team-a-2026 retired at" in reason


async def test_without_a_log_a_retired_key_is_refused_outright(tmp_path: Path) -> None:
    a = SoftwareSigner.generate()
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=1)
    for when, expected in ((future, 201), (past, 403)):
        workdir = tmp_path / str(expected)
        workdir.mkdir()
        policy = policy_text(TEAM_A, a_times=f", retiredAt: {rfc3339(when)}")
        files = {"a.pub": a.public_key_pem, "b.pub": a.public_key_pem}
        async with running(workdir, policy, files) as node:
            image = await push_image(node, "team-a/app")
            await attach(node, image, signature_bundle(a, image))
            assert (await tag(node, image)).status_code == expected
            if expected == 403:
                reason = await audit_reason(node, image)
                assert "KEY_RETIRED" in reason and "not logged; judged as of" in reason


def _files(a: SoftwareSigner, log: Log) -> dict[str, bytes]:
    return {"a.pub": a.public_key_pem, "b.pub": a.public_key_pem, "tlog.pub": log.public_key_pem}
