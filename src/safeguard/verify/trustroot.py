"""The trust material a verifier starts from: a Sigstore ``trusted_root.json``, read with its
validity windows.

Format: sigstore/protobuf-specs ``protos/sigstore_trustroot.proto`` (``TrustedRoot``, media type
``application/vnd.dev.sigstore.trustedroot+json;version=0.1`` or ``.v0.2+json``): ``tlogs`` and
``ctlogs`` are ``TransparencyLogInstance`` (``baseUrl``, ``publicKey{rawBytes, keyDetails,
validFor{start, end}}``, ``logId{keyId}``), ``certificateAuthorities`` and
``timestampAuthorities`` are ``CertificateAuthority`` (``certChain{certificates[{rawBytes}]}``
leaf-most first, ``validFor``).

Safeguard reads this file itself, rather than only through sigstore-python, because the checks it
does beyond sigstore-python (legacy ``.sig`` keyless signatures, v0.1 bundles that carry only a
signed entry timestamp, public-key bundles with log entries) need each log key's and each CA's
validity window, which sigstore-python keeps private. The sigstore-python ``TrustedRoot`` for the
same bytes is built lazily for the keyless checks delegated to it (``safeguard.verify.keyless``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from safeguard.core.errors import InvalidInput
from safeguard.formats._json import b64decode, loads
from safeguard.formats.errors import FormatError

MEDIA_TYPES: Final = frozenset(
    {
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "application/vnd.dev.sigstore.trustedroot.v0.2+json",
    }
)
MAX_SIZE: Final = 4 * 1024 * 1024

LogPublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


class TrustedRootInvalid(FormatError):
    code = "TRUSTED_ROOT_INVALID"


@dataclass(frozen=True, slots=True)
class Window:
    """A ``TimeRange``: ``start`` inclusive, ``end`` inclusive when present (open otherwise)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def contains(self, when: dt.datetime) -> bool:
        if self.start is not None and when < self.start:
            return False
        return not (self.end is not None and when > self.end)

    def describe(self) -> str:
        start = self.start.isoformat() if self.start else "-inf"
        end = self.end.isoformat() if self.end else "open"
        return f"[{start}, {end}]"


@dataclass(frozen=True, slots=True)
class LogKey:
    """One transparency log (or CT log) instance: its key, id and validity window."""

    base_url: str
    log_id: bytes
    public_key: LogPublicKey
    key_details: str
    valid: Window

    @property
    def note_name(self) -> str:
        """The key name in the log's checkpoint signature lines: the URL without scheme."""
        parts = urlsplit(self.base_url)
        return (parts.netloc + parts.path).rstrip("/")


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    uri: str
    certificates: tuple[x509.Certificate, ...]  # leaf-most (intermediate) first, root last
    valid: Window

    @property
    def root(self) -> x509.Certificate:
        return self.certificates[-1]

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return self.certificates[:-1]


@dataclass(frozen=True, slots=True)
class TrustMaterial:
    """A parsed trusted root. ``digest`` identifies its bytes (policy fingerprints use it)."""

    raw: bytes = field(repr=False)
    tlogs: tuple[LogKey, ...]
    ctlogs: tuple[LogKey, ...]
    certificate_authorities: tuple[CertificateAuthority, ...]
    timestamp_authorities: tuple[CertificateAuthority, ...]
    source: str = "<memory>"
    digest: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", "sha256:" + hashlib.sha256(self.raw).hexdigest())

    @property
    def has_logs(self) -> bool:
        return bool(self.tlogs)

    def log_for(self, log_id: bytes) -> LogKey | None:
        return next((log for log in self.tlogs if log.log_id == log_id), None)

    def sigstore_root(self) -> Any:
        """The same root as sigstore-python's ``TrustedRoot`` (for delegated keyless checks)."""
        cached = _SIGSTORE_ROOTS.get(self.digest)
        if cached is None:
            from sigstore.models import TrustedRoot
            from sigstore_models.trustroot import v1 as trustroot_v1

            try:
                cached = TrustedRoot(trustroot_v1.TrustedRoot.from_json(self.raw))
            except Exception as exc:  # sigstore raises several unrelated types
                raise TrustedRootInvalid(
                    f"{self.source}: sigstore-python cannot read this trusted root: {exc}"
                ) from None
            _SIGSTORE_ROOTS[self.digest] = cached
        return cached


_SIGSTORE_ROOTS: dict[str, Any] = {}


def _time(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TrustedRootInvalid(f"trusted root {where} is not an RFC 3339 time")
    text = value.replace("Z", "+00:00")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise TrustedRootInvalid(f"trusted root {where} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when


def _window(raw: Any, where: str) -> Window:
    if raw is None:
        return Window()
    if not isinstance(raw, dict):
        raise TrustedRootInvalid(f"trusted root {where}.validFor is not an object")
    return Window(
        _time(raw.get("start"), f"{where}.validFor.start"),
        _time(raw.get("end"), f"{where}.validFor.end"),
    )


def _log(raw: Any, where: str) -> LogKey:
    if not isinstance(raw, dict):
        raise TrustedRootInvalid(f"trusted root {where} is not an object")
    key = raw.get("publicKey")
    if not isinstance(key, dict):
        raise TrustedRootInvalid(f"trusted root {where} has no publicKey")
    der = b64decode(key.get("rawBytes"), f"{where}.publicKey.rawBytes", TrustedRootInvalid)
    try:
        public = serialization.load_der_public_key(der)
    except ValueError:
        raise TrustedRootInvalid(f"trusted root {where}.publicKey is not a DER key") from None
    if not isinstance(
        public, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    ):
        raise TrustedRootInvalid(f"trusted root {where}.publicKey has an unsupported type")
    log_id_obj = raw.get("logId")
    if not isinstance(log_id_obj, dict):
        raise TrustedRootInvalid(f"trusted root {where} has no logId")
    log_id = b64decode(log_id_obj.get("keyId"), f"{where}.logId.keyId", TrustedRootInvalid)
    base_url = raw.get("baseUrl", "")
    details = key.get("keyDetails", "")
    if not isinstance(base_url, str) or not isinstance(details, str):
        raise TrustedRootInvalid(f"trusted root {where} has a non-string baseUrl or keyDetails")
    return LogKey(base_url, log_id, public, details, _window(key.get("validFor"), where))


def _authority(raw: Any, where: str) -> CertificateAuthority:
    if not isinstance(raw, dict):
        raise TrustedRootInvalid(f"trusted root {where} is not an object")
    chain = raw.get("certChain")
    certs = chain.get("certificates") if isinstance(chain, dict) else None
    if not isinstance(certs, list) or not certs:
        raise TrustedRootInvalid(f"trusted root {where} has no certificates")
    parsed = []
    for i, item in enumerate(certs):
        if not isinstance(item, dict):
            raise TrustedRootInvalid(f"trusted root {where}.certificates[{i}] is not an object")
        der = b64decode(item.get("rawBytes"), f"{where}.certificates[{i}]", TrustedRootInvalid)
        try:
            parsed.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise TrustedRootInvalid(
                f"trusted root {where}.certificates[{i}] is not a DER certificate"
            ) from None
    uri = raw.get("uri", "")
    return CertificateAuthority(
        uri if isinstance(uri, str) else "", tuple(parsed), _window(raw.get("validFor"), where)
    )


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise TrustedRootInvalid(f"trusted root {key} is not a list")
    return value


def parse_trusted_root(data: bytes, source: str = "<memory>") -> TrustMaterial:
    """Parse ``trusted_root.json`` bytes; raises ``TrustedRootInvalid`` on anything malformed."""
    if len(data) > MAX_SIZE:
        raise TrustedRootInvalid(f"{source}: trusted root is larger than {MAX_SIZE} bytes")
    doc = loads(data, "trusted root", TrustedRootInvalid)
    if not isinstance(doc, dict):
        raise TrustedRootInvalid(f"{source}: trusted root is not a JSON object")
    if doc.get("mediaType") not in MEDIA_TYPES:
        raise TrustedRootInvalid(
            f"{source}: unsupported trusted root media type {doc.get('mediaType')!r}"
        )
    return TrustMaterial(
        bytes(data),
        tuple(_log(t, f"tlogs[{i}]") for i, t in enumerate(_list(doc, "tlogs"))),
        tuple(_log(t, f"ctlogs[{i}]") for i, t in enumerate(_list(doc, "ctlogs"))),
        tuple(
            _authority(c, f"certificateAuthorities[{i}]")
            for i, c in enumerate(_list(doc, "certificateAuthorities"))
        ),
        tuple(
            _authority(c, f"timestampAuthorities[{i}]")
            for i, c in enumerate(_list(doc, "timestampAuthorities"))
        ),
        source,
    )


def load_trust_material(path: Path | str) -> TrustMaterial:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(
            f"trusted root {p} does not exist",
            hint="use the trusted_root.json exported by your Safeguard log, or Sigstore's",
        ) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read trusted root {p}: {exc.strerror}") from None
    return parse_trusted_root(data, str(p))
