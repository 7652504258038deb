"""DSSE: Dead Simple Signing Envelope v1 (secure-systems-lab/dsse ``protocol.md``, ``envelope.md``).

A signature covers ``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``
(``LEN`` is the ASCII decimal byte length, no leading zeros), never the bare payload, so a
signature cannot be replayed under another payload type.

The JSON envelope is ``{"payloadType", "payload": base64, "signatures": [{"keyid", "sig"}]}``.
``Envelope.to_json`` writes it as cosign does for ``.att`` layers (go-securesystemslib's struct:
``payloadType``, ``payload``, then ``signatures`` with ``keyid`` before ``sig``, keyid always
present); the Sigstore bundle writes its own protobuf-JSON form (see ``safeguard.formats.bundle``).
Parsing follows the envelope's rules: ``payload``, ``payloadType``, ``signatures`` and each
``sig`` are required, ``keyid`` is optional, unknown fields are ignored, base64 may be standard
or URL-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from safeguard.core.errors import VerificationFailed
from safeguard.formats._json import Struct, b64decode, b64encode, go_marshal, loads
from safeguard.formats.errors import DSSEInvalid

INTOTO_PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
MEDIA_TYPE: Final = "application/vnd.dsse.envelope.v1+json"
MAX_ENVELOPE_SIZE: Final = 128 * 1024 * 1024

Signer = Callable[[bytes], bytes]
"""Signs the PAE bytes it is given and returns the raw signature."""

Verifier = Callable[[bytes, bytes, str], bool]
"""``verifier(pae, signature, keyid)`` returns True when ``signature`` over ``pae`` is good."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """The Pre-Authentication Encoding of ``payload`` under ``payload_type``."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True, slots=True)
class Signature:
    sig: bytes
    keyid: str = ""


@dataclass(frozen=True, slots=True)
class Envelope:
    payload_type: str
    payload: bytes = field(repr=False)
    signatures: tuple[Signature, ...] = ()

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_dict(self) -> dict[str, Any]:
        return Struct(
            payloadType=self.payload_type,
            payload=b64encode(self.payload),
            signatures=[Struct(keyid=s.keyid, sig=b64encode(s.sig)) for s in self.signatures],
        )

    def to_json(self) -> bytes:
        """The envelope as cosign writes it in an ``.att`` layer (Go ``json.Marshal``)."""
        return go_marshal(self.to_dict())

    @classmethod
    def from_dict(cls, doc: Any) -> Envelope:
        return _from_dict(doc)

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        if len(data) > MAX_ENVELOPE_SIZE:
            raise DSSEInvalid(f"DSSE envelope is larger than {MAX_ENVELOPE_SIZE} bytes")
        return _from_dict(loads(data, "DSSE envelope", DSSEInvalid))

    def with_signature(self, signature: Signature) -> Envelope:
        return Envelope(self.payload_type, self.payload, (*self.signatures, signature))


def _from_dict(doc: Any) -> Envelope:
    if not isinstance(doc, Mapping):
        raise DSSEInvalid("DSSE envelope is not a JSON object")
    payload_type = doc.get("payloadType")
    if not isinstance(payload_type, str):
        raise DSSEInvalid("DSSE envelope has no string payloadType")
    if "payload" not in doc:
        raise DSSEInvalid("DSSE envelope has no payload")
    payload = b64decode(doc["payload"], "DSSE payload", DSSEInvalid, urlsafe=True)
    raw_signatures = doc.get("signatures")
    if not isinstance(raw_signatures, list):
        raise DSSEInvalid("DSSE envelope has no signatures list")
    signatures = []
    for index, raw in enumerate(raw_signatures):
        if not isinstance(raw, Mapping):
            raise DSSEInvalid(f"DSSE signatures[{index}] is not an object")
        sig = b64decode(raw.get("sig"), f"DSSE signatures[{index}].sig", DSSEInvalid, urlsafe=True)
        keyid = raw.get("keyid", "")
        if keyid is None:
            keyid = ""
        if not isinstance(keyid, str):
            raise DSSEInvalid(f"DSSE signatures[{index}].keyid is not a string")
        signatures.append(Signature(sig, keyid))
    return Envelope(payload_type, payload, tuple(signatures))


def sign(payload_type: str, payload: bytes, signer: Signer, keyid: str = "") -> Envelope:
    """Sign ``payload`` as ``payload_type`` with ``signer`` (called once, on the PAE bytes)."""
    signature = signer(pae(payload_type, payload))
    return Envelope(payload_type, payload, (Signature(signature, keyid),))


def verify(
    envelope: Envelope, verifiers: Verifier | Sequence[Verifier], *, threshold: int = 1
) -> bytes:
    """Return the payload once at least ``threshold`` distinct verifiers accept a signature.

    Each verifier counts at most once, whichever signature it accepts (protocol.md, "Verify").
    A verifier that raises counts as a rejection. Raises ``VerificationFailed`` otherwise.
    The returned bytes are exactly the ones that were verified; use them, never a re-parse.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    candidates = [verifiers] if callable(verifiers) else list(verifiers)
    message = envelope.pae()
    accepted = 0
    for verifier in candidates:
        for signature in envelope.signatures:
            try:
                ok = verifier(message, signature.sig, signature.keyid)
            except Exception:
                ok = False
            if ok:
                accepted += 1
                break
    if accepted < threshold:
        raise VerificationFailed(
            f"DSSE envelope: {accepted} of the required {threshold} signatures verified",
            hint="check that the envelope was signed by the key you are verifying with",
        )
    return envelope.payload
