"""Who signed: the identity a Fulcio certificate carries, and matching it against what policy asks.

Safeguard matches identities itself rather than through sigstore-python's policies, because those
match exactly only, while users bring cosign's habits: ``--certificate-identity-regexp`` and
``--certificate-oidc-issuer-regexp`` (Go ``regexp.MatchString`` semantics: unanchored unless the
pattern anchors itself), plus the Fulcio extensions cosign exposes as flags. The OIDs and their
encodings follow Fulcio's ``docs/oid-info.md``: 1.1 to 1.6 hold raw UTF-8 bytes (deprecated),
1.8 onwards hold a DER ``UTF8String``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from safeguard.core.errors import InvalidInput

_FULCIO: Final = "1.3.6.1.4.1.57264.1."
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_OTHERNAME_USERNAME: Final = ObjectIdentifier(_FULCIO + "7")

# Extension name (as cosign's ``--certificate-github-workflow-*`` and sigstore's docs call them)
# to (OID suffix, DER-encoded?).
EXTENSIONS: Final[dict[str, tuple[str, bool]]] = {
    "issuer-v1": ("1", False),
    "github-workflow-trigger": ("2", False),
    "github-workflow-sha": ("3", False),
    "github-workflow-name": ("4", False),
    "github-workflow-repository": ("5", False),
    "github-workflow-ref": ("6", False),
    "issuer": ("8", True),
    "build-signer-uri": ("9", True),
    "build-signer-digest": ("10", True),
    "runner-environment": ("11", True),
    "source-repository-uri": ("12", True),
    "source-repository-digest": ("13", True),
    "source-repository-ref": ("14", True),
    "source-repository-identifier": ("15", True),
    "source-repository-owner-uri": ("16", True),
    "source-repository-owner-identifier": ("17", True),
    "build-config-uri": ("18", True),
    "build-config-digest": ("19", True),
    "build-trigger": ("20", True),
    "run-invocation-uri": ("21", True),
    "source-repository-visibility-at-signing": ("22", True),
}


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """What a signing certificate says about its holder."""

    san: str | None
    issuer: str | None
    extensions: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"subject": self.san, "issuer": self.issuer, "extensions": dict(self.extensions)}


def _der_utf8(value: bytes) -> str:
    """Decode a DER UTF8String (tag 0x0C) with a short or long length; else the raw bytes."""
    if len(value) >= 2 and value[0] == 0x0C:
        length = value[1]
        offset = 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(value[2 : 2 + n], "big")
            offset = 2 + n
        if offset + length == len(value):
            return value[offset:].decode("utf-8", errors="replace")
    return value.decode("utf-8", errors="replace")


@lru_cache(maxsize=4096)
def identity_of(cert: x509.Certificate) -> CertificateIdentity:
    """The identity ``cert`` carries (memoised: certificates compare and hash by their DER)."""
    san: str | None = None
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    if names is not None:
        for general in names:
            if isinstance(general, x509.RFC822Name | x509.UniformResourceIdentifier):
                san = general.value
                break
            if isinstance(general, x509.OtherName) and general.type_id == _OTHERNAME_USERNAME:
                san = _der_utf8(general.value)
                break
    found: dict[str, str] = {}
    by_oid = {_FULCIO + suffix: (name, der) for name, (suffix, der) in EXTENSIONS.items()}
    for ext in cert.extensions:
        entry = by_oid.get(ext.oid.dotted_string)
        if entry is None or not isinstance(ext.value, x509.UnrecognizedExtension):
            continue
        name, der = entry
        raw = ext.value.value
        found[name] = _der_utf8(raw) if der else raw.decode("utf-8", errors="replace")
    issuer = found.get("issuer") or found.get("issuer-v1")
    return CertificateIdentity(san, issuer, found)


@dataclass(frozen=True, slots=True)
class Match:
    """An exact value or a regular expression, as cosign's ``--x`` and ``--x-regexp`` pairs."""

    exact: str | None = None
    regexp: str | None = None

    def __post_init__(self) -> None:
        if self.regexp is not None:
            try:
                re.compile(self.regexp)
            except re.error as exc:
                raise InvalidInput(
                    f"invalid regular expression {self.regexp!r}: {exc}",
                    hint="the -regexp flags take Go/RE2-style patterns such as ^https://.*$",
                ) from exc

    @property
    def given(self) -> bool:
        return self.exact is not None or self.regexp is not None

    def accepts(self, value: str | None) -> bool:
        if value is None:
            return not self.given
        if self.exact is not None and value != self.exact:
            return False
        if self.regexp is None:
            return True
        # Go's ``$`` matches only at the end of the text; Python's also matches before a final
        # newline, so ``…/main$`` would accept ``…/main\n``. No certificate identity or issuer
        # legitimately holds a control character, so such values never match a pattern.
        if _CONTROL.search(value):
            return False
        return re.search(self.regexp, value) is not None

    def describe(self) -> str:
        if self.exact is not None:
            return repr(self.exact)
        return f"/{self.regexp}/"


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    """The identity a signature must carry: subject, issuer, and exact Fulcio extension values."""

    subject: Match = field(default_factory=Match)
    issuer: Match = field(default_factory=Match)
    extensions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.extensions) - set(EXTENSIONS))
        if unknown:
            raise InvalidInput(
                f"unknown certificate extension(s): {', '.join(unknown)}",
                hint=f"known extensions: {', '.join(sorted(EXTENSIONS))}",
            )

    def mismatches(self, identity: CertificateIdentity) -> list[str]:
        """Every way ``identity`` falls short; empty when it satisfies the policy."""
        reasons = []
        if not self.subject.accepts(identity.san):
            reasons.append(
                f"certificate identity {identity.san!r} does not match {self.subject.describe()}"
            )
        if not self.issuer.accepts(identity.issuer):
            reasons.append(
                f"certificate OIDC issuer {identity.issuer!r} does not match "
                f"{self.issuer.describe()}"
            )
        for name, want in sorted(self.extensions.items()):
            have = identity.extensions.get(name)
            if have != want:
                reasons.append(f"certificate extension {name} is {have!r}, expected {want!r}")
        return reasons
