"""What the keyless path builds once per trusted root, and the identity it does not match twice;
and the signed digest's hash, found where the bundle is parsed anyway.

``verifier_for`` keeps one sigstore-python ``Verifier`` per trusted root, over a root whose
keyrings are built once; both must behave like fresh ones, and be rebuilt when a validity window
in the root opens or closes. ``_PolicyAdapter`` skips re-matching only for the certificate the
caller already matched.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import VerificationError
from sigstore.models import TrustedRoot
from sigstore_models.trustroot import v1 as trustroot_v1

from safeguard.core.digest import Digest
from safeguard.core.errors import VerificationFailed
from safeguard.keys import SoftwareSigner
from safeguard.keys.base import Algorithm
from safeguard.signing.sign import sign_blob
from safeguard.verify.checks import Artifact, Candidate, Expectation, check
from safeguard.verify.identity import IdentityPolicy, Match, identity_of
from safeguard.verify.keyless import (
    _MemoRoot,
    _PolicyAdapter,
    load_trusted_root,
    parse_bundle,
    verifier_for,
    verify_artifact_bundle,
)
from safeguard.verify.policy import TrustPolicy

F = Path(__file__).parents[2] / "fixtures" / "keyless"
WHL_SIGNER = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)
GH = "https://token.actions.githubusercontent.com"


@pytest.fixture(scope="module")
def public_good() -> TrustedRoot:
    return load_trusted_root(F / "public-good.trusted_root.json")


def _leaf(name: str) -> x509.Certificate:
    return parse_bundle((F / name).read_bytes()).signing_certificate


def test_one_verifier_per_root_and_it_verifies(public_good: TrustedRoot) -> None:
    first = verifier_for(public_good)
    assert verifier_for(public_good) is first
    staging = load_trusted_root(F / "staging.trusted_root.json")
    assert verifier_for(staging) is not first
    ident = IdentityPolicy(Match(exact=WHL_SIGNER), Match(exact=GH))
    artifact = (F / "bundle_v3_github.whl").read_bytes()
    for _ in range(3):  # fresh bundles, one reused verifier
        bundle = parse_bundle((F / "bundle_v3_github.whl.sigstore").read_bytes())
        evidence = verify_artifact_bundle(
            bundle, artifact, public_good, ident, matched=identity_of(bundle.signing_certificate)
        )
        assert evidence.identity.san == WHL_SIGNER
    bundle = parse_bundle((F / "bundle_v3_github.whl.sigstore").read_bytes())
    with pytest.raises(VerificationFailed):
        verify_artifact_bundle(bundle, artifact + b"x", public_good, ident)
    # The staging root does not vouch for a public-good bundle, reused verifier or not.
    with pytest.raises(VerificationFailed):
        verify_artifact_bundle(bundle, artifact, staging, ident)


def test_memoised_keyrings_match_fresh_ones(public_good: TrustedRoot) -> None:
    memo = _MemoRoot(public_good)
    for purpose in KeyringPurpose:
        for name in ("rekor_keyring", "ct_keyring"):
            fresh = getattr(public_good, name)(purpose)._keyring
            kept = getattr(memo, name)(purpose)._keyring
            assert set(kept) == set(fresh)
            assert getattr(memo, name)(purpose) is getattr(memo, name)(purpose)
    fresh_certs = public_good.get_fulcio_certs()
    assert memo.get_fulcio_certs() == fresh_certs
    assert len(memo.get_timestamp_authorities()) == len(public_good.get_timestamp_authorities())


def _root_with_future_tlog_key(start: dt.datetime) -> TrustedRoot:
    doc = json.loads((F / "public-good.trusted_root.json").read_text())
    late = json.loads(json.dumps(doc["tlogs"][-1]))
    late["publicKey"]["validFor"] = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    late["baseUrl"] = "https://later.example"
    doc["tlogs"].append(late)
    return TrustedRoot(trustroot_v1.TrustedRoot.from_json(json.dumps(doc)))


def test_rebuilt_when_a_validity_window_opens() -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=365)
    root = _root_with_future_tlog_key(start)
    verifier = verifier_for(root)
    memo = verifier._trusted_root
    assert isinstance(memo, _MemoRoot)
    assert memo.expires == start  # the not-yet-valid key decides how long the memo lasts
    assert verifier_for(root) is verifier
    memo.expires = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)  # as if that time came
    again = verifier_for(root)
    assert again is not verifier
    assert verifier_for(root) is again


def test_identity_is_trusted_only_for_the_certificate_it_was_matched_on() -> None:
    whl = _leaf("bundle_v3_github.whl.sigstore")
    other = _leaf("staging-rekor-v2.txt.sigstore.json")
    assert whl != other
    wanted = IdentityPolicy(Match(exact=WHL_SIGNER), Match(exact=GH))
    adapter = _PolicyAdapter(wanted, checked=whl)
    adapter.verify(whl)  # the caller matched this very certificate
    same_der = x509.load_der_x509_certificate(whl.public_bytes(Encoding.DER))
    adapter.verify(same_der)  # a separately parsed copy of it is the same certificate
    with pytest.raises(VerificationError, match="does not match"):
        adapter.verify(other)  # any other certificate is matched from scratch
    _PolicyAdapter(wanted).verify(whl)
    with pytest.raises(VerificationError):
        _PolicyAdapter(wanted).verify(other)


# --- the signed digest's hash is found where the bundle is parsed ----------------------------


def test_check_digests_a_blob_with_the_hash_its_bundle_signs() -> None:
    """``check`` alone (without the engine's own re-digest) accepts a P-384 key's SHA-384
    bundle for a blob digested with SHA-256, and refuses a SHA-256 digest given without bytes."""
    signer = SoftwareSigner.generate(Algorithm.ECDSA_P384_SHA384)
    data = b"a release built on a P-384 key\n" * 10
    bundle = sign_blob(data, signer).to_json()
    assert b"SHA2_384" in bundle
    policy = TrustPolicy(keys=(signer.public_key,))
    with_bytes = check(
        Candidate("bundle", "<b>", bundle_json=bundle),
        Artifact(Digest.of(data), data),
        policy,
        Expectation(),
    )
    assert with_bytes.ok, with_bytes.reason
    digest_only = check(
        Candidate("bundle", "<b>", bundle_json=bundle),
        Artifact(Digest.of(data)),
        policy,
        Expectation(),
    )
    assert not digest_only.ok and digest_only.code == "DIGEST_MISMATCH"
    other = check(
        Candidate("bundle", "<b>", bundle_json=bundle),
        Artifact(Digest.of(data + b"x"), data + b"x"),
        policy,
        Expectation(),
    )
    assert not other.ok and other.code == "DIGEST_MISMATCH"
