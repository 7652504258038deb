"""The one verification engine: discover, check, decide (DESIGN.md, "verify/").

``verify_image`` finds every signature (or attestation) attached to an image in every place
(``safeguard.oci.signatures``: OCI referrers, the referrers tag schema, cosign's ``.sig``/``.att``
tags), checks each one (``safeguard.verify.checks``: cryptography, signed digest, identity, log)
and returns one ``Verdict``: allowed when at least one signature satisfies the policy, as cosign
accepts an image with any valid signature, with a reason and evidence for every signature looked
at. ``verify_bundle`` does the same for a bundle file about a blob.

Only registry trouble raises (``Unreachable``, exit code 3; ``NotFound`` for a missing image);
bad, forged or hostile signature material never does: it becomes a refused signature in the
verdict with its named reason.
"""

from __future__ import annotations

from safeguard.core.digest import Digest
from safeguard.core.reference import Reference
from safeguard.oci.client import RegistryClient
from safeguard.oci.signatures import Purpose, fetch_attached, list_attached
from safeguard.verify.cache import VerdictCache
from safeguard.verify.checks import Artifact, Candidate, Expectation, check
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.verdict import Verdict


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
) -> Verdict:
    """Verify the signatures (or, with ``expect.attestation``, attestations) of ``ref``."""
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
    checks = [
        check(
            Candidate(f.source, f.location, f.bundle_json, f.layer, f.annotations, f.error),
            artifact,
            policy,
            expectation,
        )
        for f in found
    ]
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
) -> Verdict:
    """Verify a bundle file about a blob (its bytes, or only its digest)."""
    result = check(
        Candidate("bundle", location, bundle_json=bundle_json),
        artifact,
        policy,
        expect or Expectation(),
    )
    return Verdict.from_checks(artifact.name or str(artifact.digest), [result])
