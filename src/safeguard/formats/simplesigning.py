"""cosign's "simple signing" payload: the JSON document a cosign image signature signs.

Format: containers/image ``docs/containers-signature.5.md`` ("JSON data format"), with cosign's
``critical.type`` of ``"cosign container image signature"`` (sigstore/sigstore
``pkg/signature/payload``)::

    {"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},
     "type":"cosign container image signature"},"optional":O}

``build_payload`` emits the bytes cosign emits (Go ``json.Marshal``: struct order, compact,
``"optional":null`` when there are no annotations, annotation keys sorted). ``parse_payload``
checks a payload we are handed and returns the digest and reference it signs. Unlike Go's
decoder it matches field names exactly (Go's is case-insensitive), which only rejects payloads
no cosign ever wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidDigest, InvalidReference
from safeguard.core.reference import DOCKER_HUB, Reference
from safeguard.formats._json import Struct, go_marshal, loads
from safeguard.formats.errors import SimpleSigningInvalid

COSIGN_SIGNATURE_TYPE: Final = "cosign container image signature"
MEDIA_TYPE: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
MAX_PAYLOAD_SIZE: Final = 128 * 1024 * 1024  # cosign's default COSIGN_MAX_ATTACHMENT_SIZE


@dataclass(frozen=True, slots=True)
class SimpleSigningPayload:
    """A parsed payload: what it claims to sign, and the exact bytes that were signed."""

    docker_reference: str
    manifest_digest: Digest
    optional: dict[str, Any] | None = None
    raw: bytes = field(default=b"", repr=False)

    @property
    def annotations(self) -> dict[str, Any]:
        return dict(self.optional or {})


def cosign_docker_reference(reference: Reference | str) -> str:
    """The ``docker-reference`` cosign writes for an image: its repository, without tag.

    cosign uses go-containerregistry's ``Repository.Name()``, which spells Docker Hub as
    ``index.docker.io``.
    """
    ref = Reference.parse(reference) if isinstance(reference, str) else reference
    registry = "index.docker.io" if ref.registry == DOCKER_HUB else ref.registry
    return f"{registry}/{ref.repository}"


def build_payload(
    docker_reference: str,
    manifest_digest: Digest | str,
    annotations: Mapping[str, Any] | None = None,
) -> bytes:
    """The payload bytes cosign would sign for ``manifest_digest`` claimed as ``docker_reference``.

    ``annotations`` become ``optional`` (cosign's ``-a key=value``); ``None`` or empty gives
    ``"optional":null`` as cosign writes when no annotation is given.
    """
    digest = Digest.parse(manifest_digest) if isinstance(manifest_digest, str) else manifest_digest
    if not isinstance(docker_reference, str) or not docker_reference:
        raise SimpleSigningInvalid("the docker-reference of a signature payload is empty")
    payload = Struct(
        critical=Struct(
            identity=Struct({"docker-reference": docker_reference}),
            image=Struct({"docker-manifest-digest": str(digest)}),
            type=COSIGN_SIGNATURE_TYPE,
        ),
        optional=dict(annotations) if annotations else None,
    )
    return go_marshal(payload)


def parse_payload(data: bytes) -> SimpleSigningPayload:
    """Validate a simple-signing payload and return what it signs.

    Raises ``SimpleSigningInvalid`` for non-JSON, a wrong ``critical.type``, a missing or
    malformed digest or reference, or a non-object ``optional``.
    """
    if not isinstance(data, bytes | bytearray):
        raise SimpleSigningInvalid("a signature payload must be bytes")
    if len(data) > MAX_PAYLOAD_SIZE:
        raise SimpleSigningInvalid(f"signature payload is larger than {MAX_PAYLOAD_SIZE} bytes")
    doc = loads(bytes(data), "signature payload", SimpleSigningInvalid)
    if not isinstance(doc, dict):
        raise SimpleSigningInvalid("signature payload is not a JSON object")
    critical = doc.get("critical")
    if not isinstance(critical, dict):
        raise SimpleSigningInvalid("signature payload has no 'critical' object")
    kind = critical.get("type")
    if kind != COSIGN_SIGNATURE_TYPE:
        raise SimpleSigningInvalid(
            f"signature payload is of an unknown type {kind!r}",
            hint=f"cosign signatures have critical.type {COSIGN_SIGNATURE_TYPE!r}",
        )
    identity = critical.get("identity")
    image = critical.get("image")
    if not isinstance(identity, dict) or not isinstance(image, dict):
        raise SimpleSigningInvalid("signature payload lacks critical.identity or critical.image")
    reference = identity.get("docker-reference")
    if not isinstance(reference, str) or not reference:
        raise SimpleSigningInvalid("signature payload has no critical.identity.docker-reference")
    digest_text = image.get("docker-manifest-digest")
    if not isinstance(digest_text, str):
        raise SimpleSigningInvalid("signature payload has no critical.image.docker-manifest-digest")
    try:
        digest = Digest.parse(digest_text)
        Reference.parse(f"{reference}@{digest}")
    except InvalidDigest as exc:
        raise SimpleSigningInvalid(
            f"signature payload signs no valid digest: {exc.message}"
        ) from None
    except InvalidReference as exc:
        raise SimpleSigningInvalid(
            f"signature payload names no valid image: {exc.message}"
        ) from None
    optional = doc.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise SimpleSigningInvalid("signature payload's 'optional' is not an object or null")
    return SimpleSigningPayload(reference, digest, optional, bytes(data))
