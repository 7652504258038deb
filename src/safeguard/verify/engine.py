"""The one verification engine: discover, check, decide (DESIGN.md, "verify/").

``verify_image`` finds every signature (or attestation) attached to an image in every place
(``safeguard.oci.signatures``: OCI referrers, the referrers tag schema, cosign's ``.sig``/``.att``
tags), checks each one (``safeguard.verify.checks``: cryptography, signed digest, identity, log)
and returns one ``Verdict``: allowed when at least one signature satisfies the policy, as cosign
accepts an image with any valid signature, with a reason and evidence for every signature looked
at. ``verify_bundle`` does the same for a bundle file about a blob.

With ``online`` (``safeguard.verify.online_log.OnlineLogCheck``), the log entries of every
accepted signature are then checked against the live log, which refuses (with a named reason)
signatures whose log was rewritten, rolled back or forked since; without it nothing leaves the
machine but the registry reads, and the result may come from the cache.

Only registry trouble raises (``Unreachable``, exit code 3; ``NotFound`` for a missing image);
bad, forged or hostile signature material never does: it becomes a refused signature in the
verdict with its named reason.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from safeguard.core.digest import Digest
from safeguard.core.reference import Reference
from safeguard.oci.client import RegistryClient
from safeguard.oci.signatures import Purpose, fetch_attached, list_attached
from safeguard.verify.cache import VerdictCache
from safeguard.verify.checks import Artifact, Candidate, Expectation, check
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.verdict import Verdict

if TYPE_CHECKING:
    from safeguard.verify.online_log import OnlineLogCheck


async def resolve_digest(client: RegistryClient, ref: Reference) -> Digest:
    if ref.digest is not None:
        return ref.digest
    return (await client.resolve(ref.repository, ref.reference)).digest


async def verify_image(
    client: RegistryClient,
    ref: Reference,
    policy: TrustPolicy,
    expect: Expectation | None = None,
    *,
    cache: VerdictCache | None = None,
    online: OnlineLogCheck | None = None,
) -> Verdict:
    """Verify the signatures (or, with ``expect.attestation``, attestations) of ``ref``.

    ``online`` checks accepted signatures against the live log (and bypasses ``cache``)."""
    if online is not None:
        cache = None
    expectation = expect or Expectation()
    digest = await resolve_digest(client, ref)
    purpose: Purpose = "attestations" if expectation.attestation else "signatures"
    listing = await list_attached(client, ref.repository, digest, purpose)
    key = None
    if cache is not None:
        key = VerdictCache.key(
            str(digest), listing.manifest_digests, policy.fingerprint, expectation
        )
        hit = cache.get(key)
        if hit is not None:
            return hit
    found = await fetch_attached(client, ref.repository, listing)
    artifact = Artifact(digest, None, f"{ref.name}@{digest}")
    candidates = [
        Candidate(f.source, f.location, f.bundle_json, f.layer, f.annotations, f.error)
        for f in found
    ]
    checks = [check(c, artifact, policy, expectation) for c in candidates]
    if online is not None:
        await asyncio.to_thread(online.apply, list(zip(candidates, checks, strict=True)))
    verdict = Verdict.from_checks(artifact.name, checks, list(listing.problems))
    if cache is not None and key is not None:
        cache.put(key, verdict)
    return verdict


def verify_bundle(
    bundle_json: bytes,
    artifact: Artifact,
    policy: TrustPolicy,
    expect: Expectation | None = None,
    *,
    location: str = "<bundle>",
    online: OnlineLogCheck | None = None,
) -> Verdict:
    """Verify a bundle file about a blob (its bytes, or only its digest); ``online`` as for
    ``verify_image``."""
    candidate = Candidate("bundle", location, bundle_json=bundle_json)
    result = check(candidate, artifact, policy, expect or Expectation())
    if online is not None:
        online.apply([(candidate, result)])
    return Verdict.from_checks(artifact.name or str(artifact.digest), [result])
