"""Which signatures the gateway counts, in-process (``create_app`` with gateway settings, the
built-in registry behind it, requests through ``httpx.ASGITransport``): ``mayPublish`` globs
naming another registry do not make an identity a signer here.

A signature is attached around the gateway (straight into the built-in registry, as a referrer
holding a Sigstore bundle), then the tag push through the gateway is judged by the rule
``team-a/**`` (``unsignedPush: reject``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.formats import dsse
from safeguard.formats.bundle import TransparencyLogEntry, dsse_bundle
from safeguard.formats.intoto import PAYLOAD_TYPE
from safeguard.gateway.app import GatewayApp
from safeguard.gateway.config import GatewaySettings
from safeguard.keys.software import SoftwareSigner
from safeguard.oci.signatures import COSIGN_SIGN_PREDICATE, attach_bundle
from safeguard.server import SafeguardApp, create_app
from safeguard.signing.sign import cosign_sign_statement
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


async def push_image(node: Node, repository: str) -> Image:
    """An image pushed through the gateway by digest (always allowed), not yet tagged."""
    config = json.dumps({"os": "linux", "n": uuid.uuid4().hex}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    response = await node.client.post(
        f"/v2/{repository}/blobs/uploads/?digest={config_digest}", content=config
    )
    assert response.status_code == 201, response.text
    raw = image_manifest(
        {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config)}, []
    )
    digest = Digest.of(raw)
    response = await node.client.put(
        f"/v2/{repository}/manifests/{digest}", content=raw, headers={"content-type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text
    return Image(repository, raw, Descriptor(OCI_MANIFEST, digest, len(raw)))


def signature_bundle(
    signer: SoftwareSigner,
    image: Image,
    log: Callable[[bytes], TransparencyLogEntry] | None = None,
) -> bytes:
    envelope = dsse.sign(PAYLOAD_TYPE, cosign_sign_statement(image.descriptor.digest), signer.sign)
    entries = []
    if log is not None:
        from safeguard.formats import rekor

        entries.append(log(rekor.dsse_v001_request(envelope.to_json(), signer.public_key_pem)))
    return dsse_bundle(envelope, public_key_hint=signer.key_id, tlog_entries=entries).to_json()


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


def policy_text(identities: str, trust_root: str = "", signers: str = "[]") -> str:
    return f"""apiVersion: safeguard.dev/v1
kind: Policy
trustRoots:
  internal:
    keys:
      - {{name: a, ref: keys/a.key, publicKey: a.pub}}
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
