"""Whether a digest is signed the way a rule wants, asked of the registry behind the gateway.

``SignatureCheck.verified`` runs the one verification engine (``safeguard.verify.verify_image``:
OCI referrers, the referrers tag schema and cosign ``.sig`` tags, every signature checked) once
per ``TrustPolicy`` of the rule's signers, and answers with the first that allows the digest.
Forged signatures, signatures by identities the rule does not name, and signatures over another
digest are refused by the engine and never allow anything. When the signers' trust root names a
transparency log (``trustRoots.*.tlog``), a signature counts only with a log entry that verifies
against it. Each verdict is then judged by the keys' lifecycle at the log's integrated time
(``SignerTrust.judge``): the policy's ``retiredAt``/``revokedAt`` and the store's custody records
(``safeguard keys retire/revoke``), so a signature the log saw after its key was retired or
revoked does not count, and one logged before a revocation counts but is flagged
(``KEY_REVOKED_REVIEW``, in the reason the audit trail records). A rule whose signers cannot be
loaded is a ``SignerUnavailable`` error: the gateway then refuses rather than guesses.

``signed`` is the weaker question tag immutability asks ("does this tag point at a signed
digest"): verified under the rule's signers, or — for a rule without loadable signers — any
signature material attached at all. Answers are cached for a few seconds per (repository,
digest) when positive; a refusal is asked again next time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

from safeguard.core.digest import Digest
from safeguard.core.reference import Reference
from safeguard.gateway.rules import GatewayRule
from safeguard.gateway.upstream import INTERNAL_HOST, Upstream
from safeguard.oci.signatures import list_attached
from safeguard.verify.custody_check import FLAG_REVIEW, KeyStatusSource
from safeguard.verify.engine import verify_image

CACHE_SECONDS: Final = 10.0


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    reason: str


class SignatureCheck:
    def __init__(self, upstream: Upstream, custody: KeyStatusSource | None = None) -> None:
        self.upstream = upstream
        self.custody = custody  # the store's key custody records (read in a worker thread)
        self._cache: dict[tuple[str, str], tuple[float, Outcome]] = {}

    def forget(self, repository: str, digest: str) -> None:
        self._cache.pop((repository, digest), None)

    async def verified(self, repository: str, digest: str, rule: GatewayRule) -> Outcome:
        key = (repository, digest)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        outcome = await self._verify(repository, digest, rule)
        if outcome.ok:  # a refusal is never cached: the signature may arrive any moment
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + CACHE_SECONDS, outcome)
        return outcome

    async def _verify(self, repository: str, digest: str, rule: GatewayRule) -> Outcome:
        trust = await asyncio.to_thread(rule.trust, repository)  # may read files or a token
        if not trust:
            return Outcome(False, f"no signer of the rule {rule.match!r} may sign {repository}")
        client = self.upstream.client()
        ref = Reference(INTERNAL_HOST, repository, None, Digest.parse(digest))
        reasons: list[str] = []
        custody = (self.custody,) if self.custody is not None else ()
        for policy in trust.policies:
            verdict = await verify_image(client, ref, policy)
            if verdict.allowed:
                verdict = await asyncio.to_thread(trust.judge, verdict, *custody)
            if verdict.allowed:
                accepted = [r for r in verdict.reasons if r.startswith("accepted")]
                flags = [r for r in verdict.reasons if f"[{FLAG_REVIEW}]" in r]
                said = "; ".join([*accepted[:1], *flags]) or "signature verified"
                return Outcome(True, said[:2000])
            reasons.extend(verdict.reasons)
        seen = list(dict.fromkeys(reasons)) or [f"no signatures found for {digest}"]
        return Outcome(False, "; ".join(seen)[:2000])

    async def signed(self, repository: str, digest: str, rule: GatewayRule | None) -> bool:
        if rule is not None and bool(await asyncio.to_thread(rule.trust, repository)):
            return (await self.verified(repository, digest, rule)).ok
        listing = await list_attached(self.upstream.client(), repository, Digest.parse(digest))
        return bool(listing.items)
