"""The CI side of the signing service: get the job's token, ask for a signature, attach it.

``sign_via_server`` is what ``safeguard sign --signing-server URL IMAGE`` (and ``attest``) run in
a CI job:

1. resolve IMAGE to its digest (the registry is the CI job's: the service never talks to it);
2. get the job's OIDC ID token (``safeguard.identity.get_ci_token``: ``--identity-token``, a
   token file, ``SAFEGUARD_ID_TOKEN``/``SIGSTORE_ID_TOKEN`` as GitLab's ``id_tokens`` set them, or
   GitHub Actions' token request). There is no other way to sign: without a CI token it stops
   with ``OIDC_CI_TOKEN_UNAVAILABLE`` (exit 2), explaining that signing happens in CI only;
3. ``POST`` the request to ``<server>/api/v1/signatures`` with the token as bearer (plain http
   only to a loopback host: the token is a credential), retrying a 429 after its
   ``Retry-After`` a few times;
4. check what came back before writing anything: the DSSE envelope and the legacy signature
   verify with the returned key, and the statement is about the requested digest;
5. attach it exactly as local signing does (``safeguard.oci.signatures``): the bundle as an OCI
   referrer and the legacy layer on ``sha256-<hex>.sig``/``.att``.

A refusal of the server becomes ``SigningRefused`` carrying the server's code, message and hint
(exit 1 for 401/403, 3 for 429/5xx, 2 otherwise).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import httpx

from safeguard.core.errors import InvalidInput, SafeguardError
from safeguard.core.reference import Reference, is_loopback_host
from safeguard.formats.intoto import Statement, Subject, build_statement
from safeguard.formats.simplesigning import cosign_docker_reference, parse_payload
from safeguard.identity import get_ci_token
from safeguard.keys.base import load_public_key, verify_signature
from safeguard.oci.client import RegistryClient
from safeguard.oci.signatures import CONTENT_DSSE, attach_bundle, attach_legacy
from safeguard.signing.errors import SigningRefused, SigningServerError
from safeguard.signing.material import ATTESTATION, SIGNATURE, SignedMaterial
from safeguard.signing.sign import TAG_WARNING, ImageSignResult

AUDIENCE_ENV: Final = "SAFEGUARD_OIDC_AUDIENCE"
DEFAULT_AUDIENCE: Final = "safeguard"
PATH: Final = "/api/v1/signatures"
MAX_RETRY_AFTER: Final = 30
MAX_ANSWER: Final = 8 * 1024 * 1024


def check_server_url(url: str) -> str:
    """``https://HOST[:PORT][/prefix]``, or ``http://`` to a loopback host only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"--signing-server {url!r} is not a URL", hint="write https://HOST[:PORT]"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InvalidInput(
            f"--signing-server {url!r} uses plain http",
            hint="use https: the request carries the job's identity token",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidInput(f"--signing-server {url!r} must be a plain base URL")
    return url.rstrip("/")


class SigningClient:
    """``POST /api/v1/signatures`` (module doc)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = check_server_url(url)
        self.retries = retries
        self._own = client is None
        self._http = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def __aenter__(self) -> SigningClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._own:
            await self._http.aclose()

    async def request(
        self,
        token: str,
        *,
        digest: str,
        repository: str,
        kind: str,
        statement: Mapping[str, Any] | None = None,
        annotations: Mapping[str, str] | None = None,
        legacy: bool = True,
    ) -> tuple[str, SignedMaterial]:
        """The identity the server signed as, and the material (or ``SigningRefused``)."""
        doc: dict[str, Any] = {
            "digest": digest,
            "repository": repository,
            "kind": kind,
            "legacy": legacy,
        }
        if statement is not None:
            doc["statement"] = dict(statement)
        if annotations:
            doc["annotations"] = dict(annotations)
        body = json.dumps(doc).encode()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "safeguard-signing-client/1",
        }
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.post(self.url + PATH, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise SigningServerError(
                    f"the signing server {self.url} did not answer: {type(exc).__name__}",
                    hint="check --signing-server and that the server is running",
                ) from None
            if response.status_code == 429 and attempt < self.retries:
                wait = _retry_after(response)
                if wait is not None and wait <= MAX_RETRY_AFTER:
                    await asyncio.sleep(wait)
                    continue
            return _answer(self.url, response, kind)
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("retry-after", "")
    return int(value) if value.isdigit() else None


def _answer(url: str, response: httpx.Response, kind: str) -> tuple[str, SignedMaterial]:
    if len(response.content) > MAX_ANSWER:
        raise SigningServerError(f"the signing server's answer is over {MAX_ANSWER} bytes")
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code != 201:
        if isinstance(doc, dict) and isinstance(doc.get("code"), str):
            hint = doc.get("hint")
            raise SigningRefused(
                doc["code"],
                str(doc.get("message", "")),
                status=response.status_code,
                hint=hint if isinstance(hint, str) else None,
                detail=doc.get("detail"),
            )
        raise SigningServerError(
            f"the signing server {url} answered HTTP {response.status_code} without an error "
            "document",
            hint="is --signing-server the URL of `safeguard serve`?",
        )
    material = SignedMaterial.from_dict(doc)
    identity = doc.get("identity") if isinstance(doc, dict) else None
    if material.kind != kind:
        raise SigningServerError(f"the signing server answered a {material.kind}, not a {kind}")
    return str(identity), material


def check_material(material: SignedMaterial, ref: Reference) -> None:
    """What the server returned is signed by the key it names and is about ``ref``'s digest."""
    assert ref.digest is not None
    try:
        key = load_public_key(material.public_key_pem)
        envelope = material.bundle.dsse_envelope
        if envelope is None or not envelope.signatures:
            raise SigningServerError("the bundle holds no signed DSSE envelope")
        verify_signature(key, envelope.signatures[0].sig, envelope.pae())
        if not Statement.from_json(envelope.payload).is_about(ref.digest):
            raise SigningServerError(f"the signed statement is not about {ref.digest}")
        if material.digest != ref.digest:
            raise SigningServerError(f"the material is about {material.digest}, not {ref.digest}")
        if material.kind == SIGNATURE and material.legacy_payload is not None:
            assert material.legacy_signature is not None
            verify_signature(key, material.legacy_signature, material.legacy_payload)
            payload = parse_payload(material.legacy_payload)
            if payload.manifest_digest != ref.digest:
                raise SigningServerError("the legacy payload names another digest")
    except SigningServerError:
        raise
    except SafeguardError as exc:
        raise SigningServerError(
            f"the signing server's material does not check out: {exc.message}"
        ) from None


async def attach(client: RegistryClient, ref: Reference, material: SignedMaterial) -> Any:
    """Attach ``material`` to ``ref`` as local signing does (module doc)."""
    assert ref.digest is not None
    subject = await client.resolve(ref.repository, ref.digest)
    pushed = await attach_bundle(
        client,
        ref.repository,
        subject,
        material.bundle.to_json(),
        predicate_type=material.predicate_type,
        content=CONTENT_DSSE,
    )
    layer = material.legacy_layer()
    legacy = None
    if layer is not None:
        tag: Literal["sig", "att"] = "sig" if material.kind == SIGNATURE else "att"
        legacy = await attach_legacy(client, ref.repository, ref.digest, layer, tag)
    return pushed, legacy


@dataclass(frozen=True, slots=True)
class ServerSignResult:
    identity: str
    material: SignedMaterial
    result: ImageSignResult

    def as_dict(self) -> dict[str, Any]:
        out = self.result.as_dict()
        out["identity"] = self.identity
        out["logIndexes"] = self.material.log_indexes
        out["keyId"] = self.material.key_id
        return out


async def sign_via_server(
    image: str,
    server: str,
    *,
    kind: str = SIGNATURE,
    identity_token: str | None = None,
    identity_token_file: str | Path | None = None,
    predicate_type: str | None = None,
    predicate: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    legacy: bool = True,
    insecure: bool = False,
    env: Mapping[str, str] | None = None,
) -> ServerSignResult:
    """The whole CI flow of the module doc, for one image."""
    environ = os.environ if env is None else env
    url = check_server_url(server)
    ref = Reference.parse(image)
    audience = environ.get(AUDIENCE_ENV) or DEFAULT_AUDIENCE
    token = await get_ci_token(
        audience, identity_token=identity_token, token_file=identity_token_file, env=environ
    )
    async with RegistryClient.for_reference(ref, allow_insecure=insecure) as registry:
        warnings = []
        if ref.digest is None:
            warnings.append(TAG_WARNING.format(ref=str(ref)))
        descriptor = await registry.resolve(ref.repository, ref.reference)
        pinned = ref.with_digest(descriptor.digest)
        statement = None
        if kind == ATTESTATION and predicate is not None:
            assert predicate_type is not None
            statement = build_statement(
                [Subject.for_digest(cosign_docker_reference(pinned), descriptor.digest)],
                predicate_type,
                predicate,
            ).to_dict()
        async with SigningClient(url) as service:
            identity, material = await service.request(
                token.value,
                digest=str(descriptor.digest),
                repository=pinned.name,
                kind=kind,
                statement=statement,
                annotations=annotations,
                legacy=legacy,
            )
        check_material(material, pinned)
        pushed, legacy_result = await attach(registry, pinned, material)
    result = ImageSignResult(
        str(pinned),
        descriptor.digest,
        material.bundle,
        pushed.digest,
        pushed.tag_schema_updated,
        legacy_result,
        warnings,
    )
    return ServerSignResult(identity, material, result)
