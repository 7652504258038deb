"""The signing service: OIDC token → identity → authorisation → HSM signature → log → bundle.

``SigningService.sign(token, body, client=...)`` takes what ``POST /api/v1/signatures`` received
and, in this order (the first failure is the answer):

1. parses the request (``SignRequest``: ``digest``, ``repository`` as ``REGISTRY/REPO``, ``kind``
   ``signature`` or ``attestation``, optional in-toto ``statement``, ``annotations``, ``legacy``);
2. verifies the bearer token and matches it to exactly one ``ci`` identity of the active policy
   (``safeguard.identity.IdentityVerifier``, built by ``policyview``);
3. takes a token of the identity's rate-limit bucket (``ratelimit``);
4. authorises the repository against the identity's ``mayPublish`` (``authorize``);
5. opens the identity's key (``identities[].key`` in its trust root, a ``pkcs11:`` ref;
   ``keyring``) and refuses a key the policy or custody says is retired or revoked (``custody``);
6. signs and logs (``material``): for a signature the cosign v3 statement carrying the
   identity's claims as ``safeguard.dev/`` annotations (``claims``), plus the legacy
   simple-signing payload; for an attestation the given statement (which must be about the
   digest) or, without one, SLSA provenance the service builds from the verified claims;
7. records the decision in the audit trail (``audit``) with the claims subset and the log
   indexes, and only then answers with the bundle and the legacy layer's material.

Every refusal is recorded too, with its stable code, and raised as its typed error; the HTTP
status of each is ``http_status`` (RFC 6750 §3.1: an unusable token is 401 ``invalid_token``; a
good token whose identity may not do this is 403).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from safeguard.core.digest import Digest
from safeguard.core.errors import SafeguardError
from safeguard.core.reference import Reference
from safeguard.formats._json import compact
from safeguard.formats.errors import FormatError
from safeguard.formats.intoto import Statement, Subject
from safeguard.formats.simplesigning import cosign_docker_reference
from safeguard.formats.slsa import PREDICATE_TYPE as SLSA_PROVENANCE
from safeguard.identity import IdentityMatch, parse_token
from safeguard.identity.errors import (
    OIDCIdentityAmbiguous,
    OIDCIdentityNotMatched,
    OIDCTokenMalformed,
    OIDCTokenRefused,
)
from safeguard.keys.errors import PKCS11Unavailable
from safeguard.keys.lifecycle import KeyState
from safeguard.policy import Identity, IdentityKind, TrustKey
from safeguard.policy.errors import PolicyNotApplied
from safeguard.signing.audit import ALLOWED, AuditEvent, AuditLog
from safeguard.signing.authorize import authorize
from safeguard.signing.claims import ANNOTATION_PREFIX, audit_claims, provenance_from_claims
from safeguard.signing.claims import signature_annotations as claim_annotations
from safeguard.signing.custody import KeyCustody
from safeguard.signing.errors import (
    SigningIdentityUnusable,
    SigningKeyRetired,
    SigningKeyUnavailable,
    SigningRequestInvalid,
    SigningTokenMissing,
)
from safeguard.signing.keyring import KeyRing
from safeguard.signing.material import (
    ATTESTATION,
    SIGNATURE,
    LogSink,
    SignedMaterial,
    sign_attestation,
    sign_signature,
)
from safeguard.signing.policyview import PolicySource
from safeguard.signing.ratelimit import RateLimiter

MAX_BODY: Final = 4 * 1024 * 1024
MAX_ANNOTATIONS: Final = 32
MAX_ANNOTATION_BYTES: Final = 4096
_FIELDS: Final = frozenset({"digest", "repository", "kind", "statement", "annotations", "legacy"})


def http_status(exc: SafeguardError) -> int:
    """The HTTP status of a refusal (module doc)."""
    if isinstance(exc, PolicyNotApplied):
        return 503
    if isinstance(exc, OIDCTokenMalformed):
        return 401
    if isinstance(exc, OIDCTokenRefused) and not isinstance(
        exc, OIDCIdentityNotMatched | OIDCIdentityAmbiguous
    ):
        return 401
    return exc.http_status


@dataclass(frozen=True, slots=True)
class SignRequest:
    """A parsed signing request (module doc)."""

    digest: Digest
    repository: str
    kind: str
    statement: dict[str, Any] | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    legacy: bool = True

    @property
    def reference(self) -> Reference:
        return Reference.parse(f"{self.repository}@{self.digest}")

    @classmethod
    def parse(cls, body: bytes) -> SignRequest:
        if len(body) > MAX_BODY:
            raise SigningRequestInvalid(f"the request body is over {MAX_BODY} bytes")
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise SigningRequestInvalid(
                "the request body is not JSON",
                hint='send {"digest": "sha256:...", "repository": "REGISTRY/REPO", '
                '"kind": "signature"}',
            ) from None
        if not isinstance(doc, dict):
            raise SigningRequestInvalid("the request body is not a JSON object")
        unknown = sorted(set(doc) - _FIELDS)
        if unknown:
            raise SigningRequestInvalid(
                f"unknown request field(s): {', '.join(map(repr, unknown[:5]))}",
                hint=f"fields are {', '.join(sorted(_FIELDS))}",
            )
        digest_text, repository, kind = doc.get("digest"), doc.get("repository"), doc.get("kind")
        if not isinstance(digest_text, str):
            raise SigningRequestInvalid("'digest' must be a string such as sha256:<64 hex>")
        digest = Digest.parse(digest_text)
        if not isinstance(repository, str) or "@" in repository:
            raise SigningRequestInvalid(
                "'repository' must be REGISTRY/REPOSITORY (no tag or digest)"
            )
        ref = Reference.parse(f"{repository}@{digest}")
        if ref.tag is not None or "/" not in repository:
            raise SigningRequestInvalid(
                f"'repository' {repository!r} must be REGISTRY/REPOSITORY without a tag",
                hint="e.g. registry.internal/team-a/app",
            )
        if kind not in (SIGNATURE, ATTESTATION):
            raise SigningRequestInvalid('\'kind\' must be "signature" or "attestation"')
        statement = doc.get("statement")
        if statement is not None:
            if kind == SIGNATURE:
                raise SigningRequestInvalid(
                    "a signature request carries no statement; send kind attestation"
                )
            if not isinstance(statement, dict):
                raise SigningRequestInvalid("'statement' must be an in-toto statement object")
            try:
                parsed = Statement.from_dict(statement)
            except FormatError as exc:
                raise SigningRequestInvalid(f"'statement': {exc.message}", hint=exc.hint) from None
            if not parsed.is_about(digest):
                raise SigningRequestInvalid(
                    f"the statement is not about {digest}: no subject has that digest",
                    hint="sign a statement whose subject is the image being attested",
                )
        annotations = doc.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise SigningRequestInvalid("'annotations' must map strings to strings")
        if (
            len(annotations) > MAX_ANNOTATIONS
            or sum(len(k) + len(v) for k, v in annotations.items()) > MAX_ANNOTATION_BYTES
        ):
            raise SigningRequestInvalid(
                f"at most {MAX_ANNOTATIONS} annotations of {MAX_ANNOTATION_BYTES} bytes in all"
            )
        reserved = [k for k in annotations if k.startswith(ANNOTATION_PREFIX)]
        if reserved:
            raise SigningRequestInvalid(
                f"annotation {reserved[0]!r} uses the {ANNOTATION_PREFIX} prefix, which the "
                "service reserves for the verified claims"
            )
        if annotations and kind == ATTESTATION:
            raise SigningRequestInvalid("annotations apply to signatures, not attestations")
        legacy = doc.get("legacy", True)
        if not isinstance(legacy, bool):
            raise SigningRequestInvalid("'legacy' must be true or false")
        return cls(digest, ref.name, kind, statement, dict(annotations), legacy)


@dataclass(frozen=True, slots=True)
class SignResult:
    identity: str
    material: SignedMaterial
    audit_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"identity": self.identity, "auditId": self.audit_id, **self.material.to_dict()}


def _unverified_claims(token: str) -> dict[str, Any] | None:
    try:
        claims = parse_token(token).claims
    except SafeguardError:
        return None
    out: dict[str, Any] = {"verified": False}
    for name in ("iss", "sub", "aud", "repository", "project_path", "ref"):
        value = claims.get(name)
        if isinstance(value, str):
            out[name] = value[:512]
        elif isinstance(value, list):
            out[name] = [v[:512] for v in value[:4] if isinstance(v, str)]
    return out


class SigningService:
    """The service (module doc). One per node; ``close`` releases keys and the audit writer."""

    def __init__(
        self,
        policy: PolicySource,
        log: LogSink,
        audit: AuditLog,
        *,
        keyring: KeyRing | None = None,
        limiter: RateLimiter | None = None,
        custody: KeyCustody | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self.log = log
        self.audit = audit
        self.keyring = keyring or KeyRing()
        self.limiter = limiter or RateLimiter()
        self.custody = custody
        self.now = now

    async def sign(self, token: str | None, body: bytes, *, client: str) -> SignResult:
        """Handle one request (module doc); raises the typed refusal after recording it."""
        event = AuditEvent(action="sign", client=client)
        try:
            result = await self._sign(token, body, event)
        except SafeguardError as exc:
            event.status, event.code = http_status(exc), exc.code
            event.reason = exc.message
            await self.audit.record(event)
            raise
        except Exception as exc:
            event.status, event.code, event.reason = 500, "INTERNAL", type(exc).__name__
            await self.audit.record(event)
            raise
        return result

    async def _sign(self, token: str | None, body: bytes, event: AuditEvent) -> SignResult:
        request = SignRequest.parse(body)
        event.kind, event.repository, event.digest = (
            request.kind,
            request.repository,
            str(request.digest),
        )
        event.action = "attest" if request.kind == ATTESTATION else "sign"
        if not token:
            raise SigningTokenMissing(
                "the request has no Authorization: Bearer <OIDC token> header",
                hint="send the CI job's ID token; signing happens in CI only",
            )
        policy = self.policy.current()
        try:
            match = await policy.verifier.verify(token)
        except SafeguardError:
            event.claims = _unverified_claims(token)
            raise
        event.identity, event.claims = match.name, audit_claims(match)
        identity = policy.identity(match.name)
        if identity.kind is not IdentityKind.ci:
            raise SigningIdentityUnusable(
                f"identity {identity.name!r} is a {identity.kind.value}; only ci identities "
                "sign through the service"
            )
        self.limiter.acquire(
            identity.name, identity.rate_limit.per_minute if identity.rate_limit else None
        )
        authorize(policy.policy, identity, request.repository)
        key = policy.signing_key(identity)
        assert key.ref is not None
        signer = self.keyring.signer(key.ref)
        event.key_id = signer.key_id
        self._check_key(identity, key, signer.key_id)
        try:
            material = await self._produce(request, match, signer)
        except PKCS11Unavailable as exc:  # the HSM failed mid-way: reopen on the next request
            self.keyring.forget(key.ref)
            raise SigningKeyUnavailable(
                f"the HSM failed to sign with key {key.name!r}: {exc.message}",
                hint="check the HSM; the key will be reopened on the next request",
            ) from None
        event.key_id = material.key_id
        event.log_indexes = material.log_indexes
        event.decision, event.status, event.code = ALLOWED, 201, "SIGNED"
        event.reason = (
            f"{request.kind} by {identity.name} with key {key.name} for "
            f"{request.repository}@{request.digest}"
        )
        audit_id = await self.audit.record(event)
        return SignResult(identity.name, material, audit_id)

    def _check_key(self, identity: Identity, key: TrustKey, key_id: str) -> None:
        now = self.now()
        problem = None
        if key.revoked_at is not None:
            problem = f"revoked at {key.revoked_at.isoformat()} in the policy"
        elif key.retired_at is not None and now >= key.retired_at:
            problem = f"retired at {key.retired_at.isoformat()} in the policy"
        elif self.custody is not None:
            state = self.custody.key_status_at(key_id, now)
            if state in (KeyState.RETIRED, KeyState.REVOKED, KeyState.FLAG_FOR_REVIEW):
                times = self.custody.times_for(key_id)
                successor = next((r.successor for r in self._records(key_id) if r.successor), None)
                what = "revoked" if any(t.revoked_at for t in times) else "retired"
                problem = f"{what} in custody" + (
                    f" (its successor is {successor!r})" if successor else ""
                )
        if problem is not None:
            raise SigningKeyRetired(
                f"key {key.name!r} of identity {identity.name!r} is {problem}; it signs no more",
                hint="point the identity at its successor key in the policy",
            )

    def _records(self, key_id: str) -> list[Any]:
        return self.custody.by_key_id(key_id) if self.custody is not None else []

    async def _produce(
        self, request: SignRequest, match: IdentityMatch, signer: Any
    ) -> SignedMaterial:
        ref = request.reference
        if request.kind == SIGNATURE:
            annotations: Mapping[str, str] = {**request.annotations, **claim_annotations(match)}
            return await sign_signature(signer, ref, annotations, self.log, legacy=request.legacy)
        if request.statement is not None:
            statement = compact(request.statement)
            predicate_type = str(request.statement["predicateType"])
        else:
            finished = self.now().strftime("%Y-%m-%dT%H:%M:%SZ")
            provenance = provenance_from_claims(match, finished_on=finished)
            statement = provenance.statement(
                [Subject.for_digest(cosign_docker_reference(ref), request.digest)]
            ).to_json()
            predicate_type = SLSA_PROVENANCE
        return await sign_attestation(
            signer, ref, statement, predicate_type, self.log, legacy=request.legacy
        )

    def close(self) -> None:
        self.keyring.close()
        self.audit.close()
