"""What the signing service reads from the policy: identities as token requirements, and keys.

``requirement_for`` maps one policy identity's ``oidc`` section (``safeguard.policy.schema``
``OIDCClaims``) onto the identity room's ``OIDCRequirement``. The policy says which CI platform an
identity belongs to by the claim it names (``repository`` for GitHub Actions, ``projectPath`` for
GitLab CI), so the platform is passed explicitly rather than inferred from the issuer: a GitHub
Enterprise or self-hosted GitLab issuer then needs no extra setting. ``ref`` is a full git ref in
the policy; the identity room compares it with GitHub's ``ref`` and GitLab's ``ref_path``.

``SigningPolicy`` is one policy version prepared for signing: its ``IdentityVerifier`` (one key
source per issuer: the issuer's discovery document, a JWKS URL, or — for a ``jwks`` *file* — the
file as stored with the policy version, so every node verifies with the same keys whatever is on
its disk), and lookups of identities and their keys. ``PolicySource`` hands out the current
``SigningPolicy``: a fixed one (``safeguard serve --policy FILE``) or the store's active version,
rebuilt only when the active version changes (``PolicyStore.active`` is cached).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from safeguard.identity import IdentityVerifier, OIDCRequirement, Platform, StaticJWKS
from safeguard.identity.jwks import JWKSet, JWKSSource
from safeguard.policy import Identity, IdentityKind, LoadedPolicy, Policy, PolicyStore, TrustKey
from safeguard.policy.errors import PolicyNotApplied
from safeguard.signing.errors import SigningConfigInvalid


def requirement_for(identity: Identity) -> OIDCRequirement:
    """The token requirement of a ``ci`` identity with an ``oidc`` section (see module doc)."""
    oidc = identity.oidc
    if oidc is None:
        raise SigningConfigInvalid(
            f"identity {identity.name!r} has no oidc section, so no CI token can act as it"
        )
    github = oidc.repository is not None
    return OIDCRequirement(
        name=identity.name,
        issuer=oidc.issuer,
        audience=oidc.audience,
        repository=oidc.repository,
        ref=oidc.ref,
        workflow=oidc.workflow,
        environment=oidc.environment,
        ref_type=oidc.ref_type.value if oidc.ref_type is not None else None,
        project_path=oidc.project_path,
        ci_config_ref_uri=oidc.ci_config_ref_uri,
        pipeline_source=oidc.pipeline_source,
        platform=Platform.GITHUB if github else Platform.GITLAB,
        jwks=oidc.jwks,
    )


def _file_sources(identities: list[Identity], files: Mapping[str, bytes]) -> dict[str, JWKSSource]:
    """Static key sets for issuers whose ``jwks`` is a file stored with the policy."""
    settings: dict[str, set[str | None]] = {}
    for identity in identities:
        assert identity.oidc is not None
        settings.setdefault(identity.oidc.issuer, set()).add(identity.oidc.jwks)
    sources: dict[str, JWKSSource] = {}
    for issuer, values in settings.items():
        if len(values) > 1:
            raise SigningConfigInvalid(
                f"identities of issuer {issuer} name different key sets (jwks)",
                hint="give every identity of one issuer the same jwks setting",
            )
        (jwks,) = values
        if jwks is None or "://" in jwks:
            continue
        data = files.get(jwks)
        if data is None:
            raise SigningConfigInvalid(
                f"the JWKS file {jwks} of issuer {issuer} is not stored with the policy",
                hint="apply the policy again with the file next to it",
            )
        sources[issuer] = StaticJWKS(
            JWKSet.parse(data, source=f"JWKS file {jwks}"),
            description=f"the JWKS file {jwks} of the policy",
        )
    return sources


@dataclass
class SigningPolicy:
    """One policy version, prepared for the signing service (module doc)."""

    version: str
    policy: Policy
    files: Mapping[str, bytes] = field(default_factory=dict)
    verifier: IdentityVerifier = field(init=False)

    def __post_init__(self) -> None:
        oidc = [
            i for i in self.policy.identities if i.kind is IdentityKind.ci and i.oidc is not None
        ]
        self.verifier = IdentityVerifier(
            [requirement_for(i) for i in oidc], sources=_file_sources(oidc, self.files)
        )

    def identity(self, name: str) -> Identity:
        found = self.policy.identity(name)
        if found is None:  # the verifier only knows identities of this policy
            raise SigningConfigInvalid(f"identity {name!r} is not in policy {self.version}")
        return found

    def signing_key(self, identity: Identity) -> TrustKey:
        """The trust-root key the identity signs with, which must name its private half."""
        key = self.policy.signing_key(identity)
        if key is None:
            raise SigningConfigInvalid(
                f"identity {identity.name!r} names no key of trust root {identity.trust_root!r}",
                hint="add key: NAME to the identity, and the key to trustRoots",
            )
        if key.ref is None:
            raise SigningConfigInvalid(
                f"key {key.name!r} of identity {identity.name!r} has only a public key, so the "
                "signing service cannot sign with it",
                hint='give the key a ref: "pkcs11:token=...;object=...?module-path=..."',
            )
        return key


class PolicySource:
    """The current ``SigningPolicy``: fixed, or the store's active version (module doc)."""

    def __init__(
        self, *, loaded: LoadedPolicy | None = None, store: PolicyStore | None = None
    ) -> None:
        if (loaded is None) == (store is None):
            raise ValueError("give exactly one of loaded or store")
        self._store = store
        self._lock = threading.Lock()
        self._current: SigningPolicy | None = None
        if loaded is not None:
            self._current = SigningPolicy(f"file:{loaded.sha256[:12]}", loaded.policy, loaded.files)

    @classmethod
    def from_file(cls, path: Path) -> PolicySource:
        from safeguard.policy import load_policy

        return cls(loaded=load_policy(path))

    def current(self) -> SigningPolicy:
        """The policy to sign by now; ``PolicyNotApplied`` before the first ``policy apply``."""
        if self._store is None:
            assert self._current is not None
            return self._current
        active = self._store.active()
        if active is None:
            raise PolicyNotApplied(
                "no policy has been applied, so no identity may sign",
                hint="run `safeguard policy apply safeguard.yaml`",
            )
        version = f"store:{active.number}"
        current = self._current
        if current is not None and current.version == version:
            return current
        with self._lock:
            if self._current is None or self._current.version != version:
                self._current = SigningPolicy(version, active.policy, active.files)
            return self._current
