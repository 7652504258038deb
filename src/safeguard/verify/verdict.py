"""The answer of the verification engine: ``Verdict(allowed, reasons, evidence)``.

Every surface (CLI, admission, gateway, audit) gets the same shape: ``allowed`` says whether the
artifact satisfies the policy, ``reasons`` says why in human words (one line per signature that
was accepted or refused, and any problem met while discovering them), and ``evidence`` records
what was used for each signature: where it was found (OCI referrer, referrers tag schema, cosign
tag, bundle file), which manifest and layer, the key id or certificate identity, the log entry and
the verified payload. Codes in each evidence item are stable (``SignatureCheck.code``), so that
scripts can match on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class SignatureCheck:
    """The outcome for one signature (or attestation) that was examined."""

    source: str  # "referrer", "tag-schema", "cosign-tag", "bundle"
    location: str  # manifest digest, tag or file the signature came from
    kind: str  # "bundle/dsse", "bundle/message-signature", "simplesigning", "dsse-layer"
    ok: bool = False
    code: str = "UNCHECKED"
    reason: str = ""
    signer: dict[str, Any] = field(default_factory=dict)  # keyId or certificate identity
    log: list[dict[str, Any]] = field(default_factory=list)
    payload: dict[str, Any] | None = None  # what the verified signature says (statement...)
    detail: dict[str, Any] = field(default_factory=dict)

    def refuse(self, code: str, reason: str) -> SignatureCheck:
        self.ok = False
        self.code = code
        self.reason = reason
        return self

    def accept(self, reason: str) -> SignatureCheck:
        self.ok = True
        self.code = "VERIFIED"
        self.reason = reason
        return self

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "location": self.location,
            "kind": self.kind,
            "verified": self.ok,
            "code": self.code,
            "reason": self.reason,
            "signer": dict(self.signer),
            "tlog": list(self.log),
        }
        if self.payload is not None:
            out["payload"] = self.payload
        if self.detail:
            out["detail"] = dict(self.detail)
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """``allowed`` when at least one examined signature satisfied every check."""

    allowed: bool
    reasons: list[str]
    evidence: list[dict[str, Any]]
    subject: str = ""
    cached: bool = False

    @classmethod
    def from_checks(
        cls, subject: str, checks: list[SignatureCheck], problems: list[str] | None = None
    ) -> Verdict:
        reasons = list(problems or [])
        for check in checks:
            where = f"{check.source} {check.location}"
            if check.ok:
                reasons.append(f"accepted {check.kind} from {where}: {check.reason}")
            else:
                reasons.append(f"refused {check.kind} from {where}: [{check.code}] {check.reason}")
        allowed = any(c.ok for c in checks)
        if not checks:
            reasons.append(f"no signatures found for {subject}")
        return cls(allowed, reasons, [c.as_dict() for c in checks], subject)

    @property
    def verified(self) -> list[dict[str, Any]]:
        return [e for e in self.evidence if e.get("verified")]

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "evidence": list(self.evidence),
            "cached": self.cached,
        }
