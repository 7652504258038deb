"""The policy file's schema: pydantic v2 models of ``safeguard.yaml`` (``safeguard.dev/v1``).

Every section is optional and has the defaults documented on its fields (docs/policy.md shows
the whole file). Field names are camelCase in YAML (``trustRoots``, ``mayPublish``) and
snake_case in Python (``trust_roots``, ``may_publish``); both are accepted on input. Unknown
fields are errors (a typo such as ``unsginedPush`` must never be ignored), values are not
coerced between types (``"60"`` is not a number, ``yes`` is not a boolean), and enums take
exactly their listed values.

The models are plain values and import nothing of the verifier: what a verifier makes of them
(a keyless block's ``IdentityPolicy``, a signer's ``TrustPolicy``) is built on the verifier's
side, in ``safeguard.verify.from_policy``.

These models check what one object can check on its own: formats (globs, regular expressions,
RFC 7512 PKCS#11 URIs, ``refs/heads/...``), required combinations and exclusions. What needs the
whole file or the file system (unique names, references between sections, readable key files)
is ``safeguard.policy.checks``; ``safeguard.policy.load`` runs both and reports every problem
with its line. Build policies through ``load_policy``/``load_policy_text`` rather than
``Policy.model_validate``, which skips those checks.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, NoReturn
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from safeguard.core.errors import InvalidInput
from safeguard.core.reference import is_loopback_host, validate_repository
from safeguard.keys.errors import PKCS11URIInvalid
from safeguard.keys.pkcs11_uri import parse_pkcs11_uri
from safeguard.policy.match import check_glob, rule_for

API_VERSION: Final = "safeguard.dev/v1"
KIND: Final = "Policy"
DEFAULT_AUDIENCE: Final = "safeguard"
DEFAULT_TICKET_PATTERN: Final = "^[A-Z]+-[0-9]+$"
SLSA_PROVENANCE_TYPES: Final = frozenset(
    {"https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"}
)
NAME_PATTERN: Final = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
_NAME_RE: Final = re.compile(NAME_PATTERN)
_GITHUB_REPOSITORY: Final = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_GITLAB_PROJECT: Final = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+$")
_MAX_TEXT: Final = 4096


def fail(message: str, hint: str | None = None, field: str | None = None) -> NoReturn:
    """Raise a validation error the loader turns into a ``PolicyIssue``.

    ``field`` (a camelCase name, or ``a/0/b`` for a deeper path) places the error under the
    object being validated, so that its line is the field's, not the object's.
    """
    raise PydanticCustomError(
        "policy", "{message}", {"message": message, "hint": hint or "", "field": field or ""}
    )


# -- value formats ---------------------------------------------------------------------------


def _name(value: str) -> str:
    if not _NAME_RE.match(value):
        fail(
            f"{value!r} is not a valid name",
            "names are 1 to 63 lower-case letters, digits, '.', '_' or '-', starting and "
            "ending with a letter or digit (e.g. team-a-release)",
        )
    return value


def _glob(value: str) -> str:
    try:
        return check_glob(value)
    except InvalidInput as exc:
        fail(exc.message, exc.hint)


def _regexp(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        fail(
            f"invalid regular expression {value!r}: {exc}",
            "write a Python/RE2-compatible pattern, e.g. ^https://github\\.com/org/.*$",
        )
    return value


def _text(value: str) -> str:
    if not value.strip():
        fail("must not be empty")
    if len(value) > _MAX_TEXT:
        fail(f"is longer than {_MAX_TEXT} characters")
    if any(not c.isprintable() for c in value):
        fail("contains control characters (a newline or tab?)", "write it on one line")
    return value


def _path(value: str) -> str:
    _text(value)
    if "://" in value:
        fail(
            f"{value!r} is a URL; a file path is expected here",
            "give a path relative to the policy file, e.g. keys/team-a.pub",
        )
    return value


def _url(value: str) -> str:
    _text(value)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        fail(f"{value!r} is not an https:// URL", "write the full URL, e.g. https://issuer.example")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        fail(
            f"{value!r} uses plain http",
            "use https; plain http is accepted only for localhost and loopback addresses",
        )
    if parts.username or parts.password:
        fail(f"{value!r} carries credentials", "remove user:password@ from the URL")
    return value


def _url_or_path(value: str) -> str:
    return _url(value) if "://" in value else _path(value)


def _pkcs11(value: str) -> str:
    try:
        uri = parse_pkcs11_uri(value)
    except PKCS11URIInvalid as exc:
        fail(f"invalid PKCS#11 URI: {exc.message}", exc.hint or "see RFC 7512")
    if "pin-value" in uri.query:
        fail(
            "the PKCS#11 URI carries a PIN (pin-value)",
            "never put a PIN in the policy: use pin-source=file:/run/secrets/PIN or let the "
            "signer ask for it",
        )
    return value


def _key_ref(value: str) -> str:
    if value.lower().startswith("pkcs11:"):
        return _pkcs11(value)
    return _path(value)


def _git_ref(value: str) -> str:
    _glob(value)
    if not (value.startswith("refs/heads/") or value.startswith("refs/tags/")):
        fail(
            f"{value!r} is not a full git ref",
            "expected refs/heads/... or refs/tags/... (e.g. refs/heads/main, refs/tags/v*)",
        )
    return value


def _repository(value: str) -> str:
    try:
        return validate_repository(value)
    except InvalidInput as exc:
        fail(exc.message, exc.hint)


Name = Annotated[str, AfterValidator(_name), Field(json_schema_extra={"pattern": NAME_PATTERN})]
Glob = Annotated[str, AfterValidator(_glob)]
RegExp = Annotated[str, AfterValidator(_regexp), Field(json_schema_extra={"format": "regex"})]
Text = Annotated[str, AfterValidator(_text)]
FilePath = Annotated[str, AfterValidator(_path)]
URL = Annotated[str, AfterValidator(_url), Field(json_schema_extra={"format": "uri"})]
PKCS11URI = Annotated[
    str,
    AfterValidator(_pkcs11),
    Field(json_schema_extra={"pattern": "^[pP][kK][cC][sS]1{2}:"}),
]
GitRef = Annotated[str, AfterValidator(_git_ref), Field(json_schema_extra={"pattern": "^refs/"})]
When = Annotated[datetime, Field(strict=False)]


# -- base ------------------------------------------------------------------------------------


class PolicyModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        regex_engine="python-re",
    )


def _exactly_one(model: BaseModel, *fields: str, what: str) -> None:
    given = [f for f in fields if getattr(model, f) is not None]
    aliases = [to_camel(f) for f in fields]
    if len(given) > 1:
        fail(
            f"{' and '.join(to_camel(f) for f in given)} are both given; {what} takes one",
            f"keep exactly one of {', '.join(aliases)}",
            to_camel(given[1]),
        )
    if not given:
        fail(f"{what} needs one of {', '.join(aliases)}", f"add {aliases[0]}: ...")


# -- trust roots -----------------------------------------------------------------------------


class KeylessTrust(PolicyModel):
    """Sigstore keyless signing: Fulcio certificates and Rekor entries under a trusted root."""

    trusted_root: FilePath
    """A Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys, timestamp authorities)."""


class TrustKey(PolicyModel):
    """A signing key: where the signing service finds it (``ref``), its public half
    (``publicKey``), or both. Verifiers need the public half: a ``pkcs11:`` ref can be read for
    it on a node with the HSM, a key file ref cannot, and nodes without the HSM (gateways,
    admission, audit) verify from ``publicKey``."""

    name: Name
    """The key's name, referred to by ``identities[].key``."""
    ref: Annotated[str, AfterValidator(_key_ref)] | None = None
    """Private key: a pkcs11: URI (RFC 7512; an HSM or token) or a cosign key file path."""
    public_key: FilePath | None = None
    """The public key (PEM): alone for keys that verify but no longer sign here, or beside
    ``ref`` so that nodes without the private key can verify."""
    retired_at: When | None = None
    """No new signatures after this time (RFC 3339 with a time zone); older ones still verify
    when the log saw them before it."""
    revoked_at: When | None = None
    """Compromised from this time: signatures the log saw at or after it are rejected."""
    revocation_reason: Text | None = None
    """Why the key was revoked (required with revokedAt)."""

    @model_validator(mode="after")
    def _check(self) -> TrustKey:
        if self.ref is None and self.public_key is None:
            fail(
                f"key {self.name!r} needs one of ref, publicKey",
                "add ref: pkcs11:... (signs here) or publicKey: PATH.pub (verifies only)",
            )
        for label, when in (("retiredAt", self.retired_at), ("revokedAt", self.revoked_at)):
            if when is not None and when.utcoffset() is None:
                fail(
                    f"{label} has no time zone",
                    "write an RFC 3339 time with a zone, e.g. 2026-06-30T00:00:00Z",
                    label,
                )
        if self.revoked_at is not None and self.revocation_reason is None:
            fail(
                "a revoked key needs a revocationReason",
                "add revocationReason: why the key was revoked",
                "revokedAt",
            )
        if self.revocation_reason is not None and self.revoked_at is None:
            fail(
                "revocationReason without revokedAt",
                "add revokedAt: the time from which the key is untrusted",
                "revocationReason",
            )
        return self


class TlogTrust(PolicyModel):
    """The private transparency log (``safeguard serve``) whose entries signatures carry."""

    url: URL
    """Base URL of the log (Rekor v1 API)."""
    public_key: FilePath
    """The log's public key (PEM), as ``safeguard tlog export-trusted-root`` reports it."""


class CATrust(PolicyModel):
    """A custom certificate authority for signing certificates (a private Fulcio)."""

    roots: Annotated[list[FilePath], Field(min_length=1)]
    """Root CA certificates (PEM files)."""
    intermediates: list[FilePath] = []
    """Intermediate CA certificates (PEM files)."""


class TrustRoot(PolicyModel):
    """What a set of signatures is checked against: keys, a keyless root, a CA, a log."""

    keyless: KeylessTrust | None = None
    """Sigstore keyless (public good or a private deployment)."""
    keys: list[TrustKey] = []
    """Named keys (HSM, token or cosign key files)."""
    tlog: TlogTrust | None = None
    """The transparency log signatures made with these keys are recorded in."""
    ca: CATrust | None = None
    """A custom CA for signing certificates."""

    @model_validator(mode="after")
    def _check(self) -> TrustRoot:
        if self.keyless is None and not self.keys and self.ca is None:
            fail(
                "this trust root trusts nothing",
                "give keyless: {trustedRoot: ...}, keys: [...] or ca: {roots: [...]}",
            )
        return self

    def key(self, name: str) -> TrustKey | None:
        return next((k for k in self.keys if k.name == name), None)


# -- identities ------------------------------------------------------------------------------


class IdentityKind(StrEnum):
    ci = "ci"
    release_engineer = "release-engineer"


class RefType(StrEnum):
    branch = "branch"
    tag = "tag"


class OIDCClaims(PolicyModel):
    """Which CI workload tokens (OIDC, e.g. GitHub Actions or GitLab CI) may act as the identity.

    Every given claim must match exactly, except ``ref``, which may be a glob
    (``refs/tags/v*``). GitHub fields: repository, workflow, environment; GitLab fields:
    projectPath, pipelineSource, ciConfigRefUri. ``ref`` is always the full git ref: a GitLab
    token's ``ref: main`` with ``ref_type: branch`` is ``refs/heads/main``.
    """

    issuer: URL
    """The token issuer (``iss``), e.g. https://token.actions.githubusercontent.com."""
    jwks: Annotated[str, AfterValidator(_url_or_path)] | None = None
    """The issuer's keys: a JWKS URL, or a JWKS file for air-gapped sites (default: the
    issuer's OpenID discovery document)."""
    audience: Text = DEFAULT_AUDIENCE
    """The audience (``aud``) the token must be issued for."""
    repository: Text | None = None
    """GitHub ``repository`` claim: owner/name."""
    ref: GitRef | None = None
    """The git ref the job runs on: refs/heads/... or refs/tags/... (a glob is allowed)."""
    workflow: Text | None = None
    """GitHub workflow file, as in ``workflow_ref`` before the @, e.g.
    .github/workflows/release.yml."""
    environment: Text | None = None
    """The deployment environment (``environment`` claim)."""
    project_path: Text | None = None
    """GitLab ``project_path`` claim: group[/subgroup]/project."""
    ref_type: Annotated[RefType, Field(strict=False)] | None = None
    """``branch`` or ``tag``."""
    pipeline_source: Text | None = None
    """GitLab ``pipeline_source`` claim, e.g. push, web, schedule."""
    ci_config_ref_uri: Text | None = None
    """GitLab ``ci_config_ref_uri`` claim: the pipeline definition at its ref."""

    @model_validator(mode="after")
    def _check(self) -> OIDCClaims:
        if self.repository is not None and self.project_path is not None:
            fail(
                "repository (GitHub) and projectPath (GitLab) are both given",
                "an identity is one CI project: keep the one its tokens carry",
                "projectPath",
            )
        if self.repository is None and self.project_path is None:
            fail(
                "an oidc identity must name its repository (GitHub) or projectPath (GitLab)",
                "without it, any project on the issuer could sign as this identity",
                "repository",
            )
        if self.repository is not None:
            if not _GITHUB_REPOSITORY.match(self.repository):
                fail(f"{self.repository!r} is not owner/name", "e.g. org/team-a", "repository")
            for gitlab in ("pipeline_source", "ci_config_ref_uri"):
                if getattr(self, gitlab) is not None:
                    fail(
                        f"{to_camel(gitlab)} is a GitLab claim, but repository names a GitHub "
                        "repository",
                        f"remove {to_camel(gitlab)}",
                        to_camel(gitlab),
                    )
        if self.project_path is not None:
            if not _GITLAB_PROJECT.match(self.project_path):
                fail(
                    f"{self.project_path!r} is not group/project",
                    "e.g. org/team-a/app",
                    "projectPath",
                )
            if self.workflow is not None:
                fail(
                    "workflow is a GitHub claim, but projectPath names a GitLab project",
                    "use ciConfigRefUri for GitLab pipelines",
                    "workflow",
                )
        if self.workflow is not None and "@" in self.workflow:
            fail(
                "workflow must not carry the @ref",
                "put the ref in ref: refs/heads/... and the file path in workflow",
                "workflow",
            )
        if self.ref is not None and self.ref_type is not None:
            expected = RefType.branch if self.ref.startswith("refs/heads/") else RefType.tag
            if self.ref_type is not expected:
                fail(
                    f"refType {self.ref_type.value} contradicts ref {self.ref}",
                    f"use refType: {expected.value}, or drop refType",
                    "refType",
                )
        return self


class CertificateExtensions(PolicyModel):
    """Exact values of Fulcio certificate extensions (Fulcio ``docs/oid-info.md``)."""

    github_workflow_trigger: Text | None = None
    github_workflow_sha: Text | None = None
    github_workflow_name: Text | None = None
    github_workflow_repository: Text | None = None
    github_workflow_ref: Text | None = None
    build_signer_uri: Text | None = None
    build_signer_digest: Text | None = None
    runner_environment: Text | None = None
    source_repository_uri: Text | None = None
    source_repository_digest: Text | None = None
    source_repository_ref: Text | None = None
    source_repository_identifier: Text | None = None
    source_repository_owner_uri: Text | None = None
    source_repository_owner_identifier: Text | None = None
    build_config_uri: Text | None = None
    build_config_digest: Text | None = None
    build_trigger: Text | None = None
    run_invocation_uri: Text | None = None
    source_repository_visibility_at_signing: Text | None = None

    def by_extension_name(self) -> dict[str, str]:
        """``{"source-repository-uri": ...}``: the names ``safeguard.verify.identity`` uses."""
        return {
            name.replace("_", "-"): value
            for name, value in self.model_dump(exclude_none=True).items()
        }


class KeylessMatch(PolicyModel):
    """The certificate identity of keyless signatures, as cosign's --certificate-* flags."""

    issuer: Text | None = None
    """The OIDC issuer in the certificate, exactly."""
    issuer_reg_exp: RegExp | None = None
    """The OIDC issuer, as a regular expression (unanchored unless it anchors itself)."""
    subject: Text | None = None
    """The certificate subject (SAN: a workflow URI or an e-mail), exactly."""
    subject_reg_exp: RegExp | None = None
    """The subject, as a regular expression (unanchored unless it anchors itself)."""
    extensions: CertificateExtensions | None = None
    """Certificate extensions that must hold these exact values."""

    @model_validator(mode="after")
    def _check(self) -> KeylessMatch:
        _exactly_one(self, "issuer", "issuer_reg_exp", what="a keyless identity")
        _exactly_one(self, "subject", "subject_reg_exp", what="a keyless identity")
        return self


class RateLimit(PolicyModel):
    per_minute: Annotated[int, Field(ge=1, le=100_000)]
    """Signatures per minute this identity may request from the signing service."""


class Identity(PolicyModel):
    """A signer: a build role (``ci``), or a named person with a hardware token
    (``release-engineer``: token + PIN + TOTP, with a ticket logged for every signature)."""

    name: Name
    """Referred to by ``signers: [{identity: NAME}]``."""
    kind: Annotated[IdentityKind, Field(strict=False)] = IdentityKind.ci
    """``ci`` (default) or ``release-engineer``."""
    trust_root: Name
    """The trust root (``trustRoots`` key) its signatures are checked against."""
    key: Name | None = None
    """The trust root's key the signing service signs with for this identity (oidc), or that
    holds a release engineer's token public key."""
    oidc: OIDCClaims | None = None
    """CI tokens that may sign as this identity through the signing service."""
    keyless: KeylessMatch | None = None
    """Keyless signatures (Fulcio certificates) made elsewhere that count as this identity."""
    token: PKCS11URI | None = None
    """release-engineer: the hardware token (pkcs11: URI) holding the person's key."""
    ticket_pattern: RegExp | None = None
    """release-engineer: the change ticket every signature must cite (default
    ^[A-Z]+-[0-9]+$)."""
    accepted_in: list[Glob] = []
    """release-engineer: repositories where verifiers accept this person's signatures
    (default: the mayPublish globs)."""
    may_publish: list[Glob] = []
    """Image repositories (registry/path globs) this identity may sign for."""
    rate_limit: RateLimit | None = None
    """Signing rate limit (default: none)."""

    @model_validator(mode="before")
    @classmethod
    def _ticket_default(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("kind") == IdentityKind.release_engineer.value
            and "ticketPattern" not in data
            and "ticket_pattern" not in data
        ):
            return {**data, "ticketPattern": DEFAULT_TICKET_PATTERN}
        return data

    @model_validator(mode="after")
    def _check(self) -> Identity:
        if self.kind is IdentityKind.release_engineer:
            self._check_release_engineer()
            return self
        _exactly_one(self, "oidc", "keyless", what="a ci identity")
        for person_only in ("token", "ticket_pattern"):
            if getattr(self, person_only) is not None:
                fail(
                    f"{to_camel(person_only)} is for release-engineer identities",
                    "remove it, or set kind: release-engineer",
                    to_camel(person_only),
                )
        if self.accepted_in:
            fail(
                "acceptedIn is for release-engineer identities",
                "use mayPublish for build roles",
                "acceptedIn",
            )
        if self.oidc is not None and self.key is None:
            fail(
                "an oidc identity needs the key the signing service signs with",
                f"add key: NAME (a key of trust root {self.trust_root!r})",
                "key",
            )
        if self.keyless is not None and self.key is not None:
            fail(
                "a keyless identity has no key: its signatures carry certificates",
                "remove key",
                "key",
            )
        return self

    def _check_release_engineer(self) -> None:
        for field in ("oidc", "keyless"):
            if getattr(self, field) is not None:
                fail(
                    f"a release-engineer identity may not have {field}",
                    "a person signs with their hardware token; CI tokens are for ci identities",
                    field,
                )
        if self.token is None:
            fail(
                "a release-engineer identity needs its hardware token",
                'add token: "pkcs11:token=LABEL;object=KEY"',
                "token",
            )

    @property
    def ticket_regex(self) -> re.Pattern[str] | None:
        return re.compile(self.ticket_pattern) if self.ticket_pattern is not None else None

    @property
    def accepted_in_globs(self) -> list[str]:
        """Where verifiers accept this identity's signatures: ``acceptedIn``, else
        ``mayPublish``."""
        return list(self.accepted_in or self.may_publish)


# -- rules -----------------------------------------------------------------------------------


class SignerRef(PolicyModel):
    """Whose signature counts: a policy identity, or a public key file."""

    identity: Name | None = None
    """An identity's name (``identities[].name``)."""
    key: FilePath | None = None
    """A PEM public key file, relative to the policy file."""

    @model_validator(mode="after")
    def _check(self) -> SignerRef:
        _exactly_one(self, "identity", "key", what="a signer")
        return self


class UnsignedPush(StrEnum):
    reject = "reject"
    grace = "grace"
    warn = "warn"
    off = "off"


class Quarantine(PolicyModel):
    """Where the gateway moves artifacts that fail policy, and for how long they stay."""

    namespace: Annotated[str, AfterValidator(_repository)]
    """Repository prefix of the quarantine, e.g. ``quarantine``."""
    deprecation_days: Annotated[int, Field(ge=0, le=3650)] = 90
    """Days a quarantined artifact is kept before it is deleted."""


class RegistryRule(PolicyModel):
    """What the gateway enforces on pushes to the repositories ``match`` covers."""

    match: Glob
    """Repository path glob inside the registry the gateway fronts, e.g. team-a/**."""
    unsigned_push: Annotated[UnsignedPush, Field(strict=False)] = UnsignedPush.reject
    """A push with no valid signature: ``reject`` it, accept it for ``graceSeconds`` (``grace``,
    then quarantine), accept it with a ``warn``ing, or ``off`` (no check)."""
    grace_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 60
    """With ``grace``: seconds a pushed artifact has to be signed."""
    signers: list[SignerRef] = []
    """Whose signatures count (default: any identity of the policy)."""
    immutable_tags: list[Glob] = []
    """Tag globs (e.g. ``v*``) that may not be moved once pushed."""
    quarantine: Quarantine | None = None
    """Quarantine for artifacts that fail policy (default: none, they are rejected)."""

    @model_validator(mode="after")
    def _check(self) -> RegistryRule:
        for i, tag in enumerate(self.immutable_tags):
            if "/" in tag:
                fail(
                    f"tag glob {tag!r} contains /, which no tag can",
                    "tags are letters, digits, '_', '.' and '-'; e.g. v* or release-*",
                    f"immutableTags/{i}",
                )
        return self


class VerificationMode(StrEnum):
    enforce = "enforce"
    warn = "warn"


class AttestationRequirement(PolicyModel):
    """An in-toto attestation that must be attached, signed and say what is asked."""

    type: Text
    """The predicate type URI, e.g. https://slsa.dev/provenance/v1."""
    builder_id: Text | None = None
    """SLSA provenance: ``runDetails.builder.id``, exactly."""
    build_type: Text | None = None
    """SLSA provenance: ``buildDefinition.buildType``, exactly."""
    source_uri: Text | None = None
    """SLSA provenance: the source repository URI (git+https://...) the build used."""
    source_ref: GitRef | None = None
    """SLSA provenance: the source ref (refs/heads/... or refs/tags/..., a glob is allowed)."""
    signers: list[SignerRef] = []
    """Who must sign the attestation (default: the rule's signers)."""

    @model_validator(mode="after")
    def _check(self) -> AttestationRequirement:
        if ":" not in self.type:
            fail(
                f"{self.type!r} is not a predicate type URI",
                "e.g. https://slsa.dev/provenance/v1 or https://spdx.dev/Document",
                "type",
            )
        if self.type not in SLSA_PROVENANCE_TYPES:
            for field in ("builder_id", "build_type", "source_uri", "source_ref"):
                if getattr(self, field) is not None:
                    fail(
                        f"{to_camel(field)} applies to SLSA provenance only",
                        f"use type: https://slsa.dev/provenance/v1, or remove {to_camel(field)}",
                        to_camel(field),
                    )
        return self


class VerificationRule(PolicyModel):
    """What every verifier (admission, CI gate, mirror, audit) requires of matching images."""

    match: Glob
    """Full repository glob including the registry host, e.g. registry.internal/team-a/**."""
    mode: Annotated[VerificationMode, Field(strict=False)] = VerificationMode.enforce
    """``enforce`` (deny what fails) or ``warn`` (allow, and report)."""
    signers: Annotated[list[SignerRef], Field(min_length=1)]
    """Whose signature makes an image acceptable (any one of them)."""
    attestations: list[AttestationRequirement] = []
    """Attestations that must also be present and satisfied."""


class NamespaceSelector(PolicyModel):
    include: list[Glob] = ["*"]
    """Namespace globs the webhooks act in (default: all)."""
    exclude: list[Glob] = []
    """Namespace globs left alone, even when included."""


class FailurePolicy(StrEnum):
    fail = "fail"
    ignore = "ignore"


class Admission(PolicyModel):
    """The Kubernetes admission webhooks."""

    namespaces: NamespaceSelector = NamespaceSelector()
    """Which namespaces the webhooks act in."""
    failure_policy: Annotated[FailurePolicy, Field(strict=False)] = FailurePolicy.fail
    """When verification cannot be completed: ``fail`` (deny) or ``ignore`` (allow)."""
    mutate_to_digest: bool = True
    """Rewrite image tags to the verified digest."""


class CleanupCategories(PolicyModel):
    active_within_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """Pulled within this many days: active."""
    occasional_within_days: Annotated[int, Field(ge=1, le=3650)] = 180
    """Pulled within this many days (but not active): occasional. Older: dormant; no owner and
    no pulls: orphaned."""

    @model_validator(mode="after")
    def _check(self) -> CleanupCategories:
        if self.occasional_within_days <= self.active_within_days:
            fail(
                f"occasionalWithinDays ({self.occasional_within_days}) must be greater than "
                f"activeWithinDays ({self.active_within_days})",
                "e.g. activeWithinDays: 30, occasionalWithinDays: 180",
                "occasionalWithinDays",
            )
        return self


class Cleanup(PolicyModel):
    """The legacy programme: categories, claims and deadlines for unsigned artifacts."""

    categories: CleanupCategories = CleanupCategories()
    """How recent pulls sort legacy artifacts."""
    occasional_deadline_days: Annotated[int, Field(ge=1, le=3650)] = 60
    """Days owners of occasional artifacts have to sign or retire them."""
    claim_window_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """Days to claim ownership of an artifact before it counts as orphaned."""


# -- the file --------------------------------------------------------------------------------


class Policy(PolicyModel):
    """Safeguard's policy (safeguard.yaml): trust, signers, and the rules every surface
    enforces."""

    model_config = ConfigDict(title="Safeguard policy")

    api_version: Literal["safeguard.dev/v1"]
    """Always safeguard.dev/v1."""
    kind: Literal["Policy"]
    """Always Policy."""
    trust_roots: dict[Name, TrustRoot] = {}
    """Named trust roots: keys, keyless roots, CAs and logs."""
    identities: list[Identity] = []
    """Signers: build roles, and release engineers with hardware tokens."""
    registries: list[RegistryRule] = []
    """Gateway rules per repository glob; the first match (file order) applies."""
    verification: list[VerificationRule] = []
    """Verification rules per image glob; the first match (file order) applies."""
    admission: Admission = Admission()
    """The Kubernetes admission webhooks."""
    cleanup: Cleanup = Cleanup()
    """The legacy programme."""

    def identity(self, name: str) -> Identity | None:
        return next((i for i in self.identities if i.name == name), None)

    def trust_root(self, name: str) -> TrustRoot | None:
        return self.trust_roots.get(name)

    def signing_key(self, identity: Identity) -> TrustKey | None:
        """The key an identity signs with: ``identity.key`` of ``identity.trustRoot``."""
        root = self.trust_roots.get(identity.trust_root)
        if root is None or identity.key is None:
            return None
        return root.key(identity.key)

    def registry_rule(self, repository: str) -> RegistryRule | None:
        """The gateway rule for a repository path (first match in file order)."""
        return rule_for(self.registries, repository)

    def verification_rule(self, repository: str) -> VerificationRule | None:
        """The verification rule for ``registry/repository`` (first match in file order)."""
        return rule_for(self.verification, repository)

    def normalized(self) -> dict[str, Any]:
        """The policy with every default filled in, camelCase, JSON types (unset optional
        fields left out)."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return data
