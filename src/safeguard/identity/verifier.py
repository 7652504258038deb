"""Verify-and-match in one call: what the signing service asks of an incoming CI ID token.

``IdentityVerifier`` holds the configured identities and one key source per issuer. For a token,
it reads the (unverified) ``iss`` only to choose among the *configured* issuers — a token can
never make the service fetch keys from an issuer it names itself — then verifies the token with
that issuer's keys (``tokens.verify_token``) and matches it to exactly one identity
(``match.match_identity``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from safeguard.identity.errors import (
    OIDCAudienceMismatch,
    OIDCIssuerMismatch,
    OIDCRequirementInvalid,
)
from safeguard.identity.jwks import JWKSSource, jwks_source
from safeguard.identity.match import IdentityMatch, OIDCRequirement, match_identity
from safeguard.identity.tokens import (
    DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME,
    parse_token,
    verify_token,
)


class IdentityVerifier:
    """The configured CI identities and their issuers' keys; ``verify`` a token against them.

    ``sources`` overrides the key source of an issuer (for example a ``StaticJWKS``); otherwise
    each issuer's source is built from its identities' ``jwks`` setting (``jwks.jwks_source``),
    with file paths relative to ``base_dir``. Identities of one issuer must agree on ``jwks``.
    ``cache`` options (``ttl``, ``min_refetch_interval``...) go to the key sources.
    """

    def __init__(
        self,
        requirements: Iterable[OIDCRequirement],
        *,
        base_dir: Path | None = None,
        client: httpx.AsyncClient | None = None,
        sources: Mapping[str, JWKSSource] | None = None,
        leeway: float = DEFAULT_LEEWAY,
        max_lifetime: float = DEFAULT_MAX_LIFETIME,
        **cache: Any,
    ) -> None:
        self.requirements = tuple(requirements)
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self._by_issuer: dict[str, list[OIDCRequirement]] = {}
        names: set[str] = set()
        for req in self.requirements:
            if req.name in names:
                raise OIDCRequirementInvalid(f"two identities are named {req.name!r}")
            names.add(req.name)
            self._by_issuer.setdefault(req.issuer, []).append(req)
        self._sources: dict[str, JWKSSource] = {}
        for issuer, reqs in self._by_issuer.items():
            if sources is not None and issuer in sources:
                self._sources[issuer] = sources[issuer]
                continue
            settings = {r.jwks or None for r in reqs}
            if len(settings) > 1:
                raise OIDCRequirementInvalid(
                    f"identities {', '.join(r.name for r in reqs)} share issuer {issuer} but "
                    "name different key sets (jwks)",
                    hint="give every identity of one issuer the same jwks setting",
                )
            self._sources[issuer] = jwks_source(
                issuer, settings.pop(), base_dir=base_dir, client=client, **cache
            )

    def source(self, issuer: str) -> JWKSSource:
        return self._sources[issuer]

    @property
    def issuers(self) -> list[str]:
        return list(self._by_issuer)

    async def verify(self, token: str, *, now: dt.datetime | float | None = None) -> IdentityMatch:
        """Verify ``token`` and return the one identity it matches; refuse with a typed error."""
        claims = parse_token(token).claims
        iss = claims.get("iss")
        candidates = self._by_issuer.get(iss) if isinstance(iss, str) else None
        if not candidates:
            raise OIDCIssuerMismatch(
                f"the token's issuer {iss!r} is not the issuer of any signer identity "
                f"(configured: {', '.join(self._by_issuer) or 'none'})",
                hint="sign from a CI platform that an identity in the policy names",
                detail={"iss": iss, "expected": list(self._by_issuer)},
            )
        assert isinstance(iss, str)
        aud = claims.get("aud")
        listed = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        token_auds = {a for a in listed if isinstance(a, str)}
        wanted = sorted({r.audience for r in candidates})
        chosen = next((a for a in wanted if a in token_auds), None)
        if chosen is None:
            raise OIDCAudienceMismatch(
                f"the token's audience is {aud!r}, expected {' or '.join(map(repr, wanted))}",
                hint=f"request the token with audience {wanted[0]!r}",
                detail={"aud": aud, "expected": wanted},
            )
        verified = await verify_token(
            token,
            issuer=iss,
            audience=chosen,
            jwks=self._sources[iss],
            now=now,
            leeway=self.leeway,
            max_lifetime=self.max_lifetime,
        )
        return match_identity(verified, self.requirements)
