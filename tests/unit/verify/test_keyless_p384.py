"""Keyless v0.3 bundles by a P-384 certificate, which signs SHA-384 (``messageDigest``
``SHA2_384``), made with the test CA, CT log and Rekor-v1-style log (``fakesigstore``).

sigstore-python 4.x verifies ECDSA over SHA-256 only: handed the bundle's own hash
(``safeguard.verify.keyless`` passes ``SHA2_384``, no longer a hard-coded ``SHA2_256``) it refuses
with "unknown hash algorithm", a reason the error now names. The engine therefore checks such
bundles on Safeguard's own path (chain, SCT, SET, inclusion proof, binding, signature with the
key's hash), while the same bundle made with a P-256 certificate still goes to sigstore-python,
which accepts it: the test world is one sigstore-python trusts.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput, VerificationFailed
from safeguard.formats import rekor
from safeguard.formats.bundle import dsse_bundle, message_signature_bundle
from safeguard.formats.dsse import Envelope, Signature
from safeguard.signing.sign import cosign_sign_statement
from safeguard.verify.checks import Artifact, Expectation
from safeguard.verify.engine import verify_bundle
from safeguard.verify.identity import IdentityPolicy, Match
from safeguard.verify.keyless import parse_bundle, signed_hash, verify_artifact_bundle
from safeguard.verify.policy import TrustPolicy
from tests.unit.verify.fakesigstore import FakeSigstore

DATA = b"p384 keyless artifact\n"
CURVES = {
    "P-256": (ec.SECP256R1(), hashes.SHA256(), "SHA2_256", "sha256"),
    "P-384": (ec.SECP384R1(), hashes.SHA384(), "SHA2_384", "sha384"),
}


@pytest.fixture(scope="module")
def world() -> FakeSigstore:
    return FakeSigstore()


def blob_bundle(world: FakeSigstore, curve: str, *, logged: str | None = None) -> bytes:
    """A v0.3 message-signature bundle as a Sigstore client makes it: the key's hash in
    ``messageDigest`` and in the ``hashedrekord`` entry (or ``logged``)."""
    named, hash_, algorithm, name = CURVES[curve]
    key, cert = world.leaf(curve=named)
    signature = key.sign(DATA, ec.ECDSA(hash_))
    digest = Digest.of(DATA, name)
    entry = world.log(
        rekor.hashedrekord_v001(Digest.of(DATA, logged or name), signature, world.pem(cert))
    )
    return message_signature_bundle(
        signature,
        digest=bytes.fromhex(digest.hex),
        digest_algorithm=algorithm,
        certificate=cert.public_bytes(serialization.Encoding.DER),
        tlog_entries=[entry],
    ).to_json()


def policy(world: FakeSigstore) -> TrustPolicy:
    return TrustPolicy(
        identity=IdentityPolicy(Match(exact="dev@safeguard.test")), trust=world.trust()
    )


def test_p256_bundle_goes_to_sigstore_python_which_accepts_it(world: FakeSigstore) -> None:
    raw = blob_bundle(world, "P-256")
    verdict = verify_bundle(raw, Artifact(Digest.of(DATA), DATA), policy(world))
    assert verdict.allowed, verdict.reasons
    assert verdict.evidence[0]["tlog"][0]["verifiedBy"] == "sigstore-python"
    bundle = parse_bundle(raw)
    assert signed_hash(bundle)[1] == "sha256"
    identity = IdentityPolicy()
    root = world.trust().sigstore_root()
    verify_artifact_bundle(bundle, DATA, root, identity)
    verify_artifact_bundle(bundle, Digest.of(DATA), root, identity)


def test_keyless_passes_the_bundles_hash_and_names_sigstore_pythons_limit(
    world: FakeSigstore,
) -> None:
    bundle = parse_bundle(blob_bundle(world, "P-384"))
    assert signed_hash(bundle)[1] == "sha384"
    root = world.trust().sigstore_root()
    for artifact in (DATA, Digest.of(DATA, "sha384")):
        with pytest.raises(VerificationFailed) as info:
            verify_artifact_bundle(bundle, artifact, root, IdentityPolicy())
        assert "unknown hash algorithm" in info.value.message
        assert "SHA2_256 message signatures only, not sha384" in info.value.message
    # A digest of another hash than the bundle signs is a usage error, named as such.
    with pytest.raises(InvalidInput, match="signs a sha384 digest, not sha256"):
        verify_artifact_bundle(bundle, Digest.of(DATA), root, IdentityPolicy())


def test_p384_blob_bundle_verifies_on_safeguards_own_path(world: FakeSigstore) -> None:
    raw = blob_bundle(world, "P-384")
    by_bytes = verify_bundle(raw, Artifact(Digest.of(DATA), DATA), policy(world))
    assert by_bytes.allowed, by_bytes.reasons
    evidence = by_bytes.evidence[0]
    assert "verifiedBy" not in evidence["tlog"][0]
    assert evidence["tlog"][0]["verified"] and evidence["tlog"][0]["inclusionProof"]
    assert evidence["detail"]["sct"]["verified"] is True
    by_digest = verify_bundle(raw, Artifact(Digest.of(DATA, "sha384")), policy(world))
    assert by_digest.allowed, by_digest.reasons
    # Hostile: another artifact, the sha256 digest alone, another identity, an entry of the
    # payload's sha256 (binds nothing).
    for artifact, code in (
        (Artifact(Digest.of(b"x"), b"x"), "DIGEST_MISMATCH"),
        (Artifact(Digest.of(DATA)), "DIGEST_MISMATCH"),
    ):
        assert verify_bundle(raw, artifact, policy(world)).evidence[0]["code"] == code
    other = TrustPolicy(identity=IdentityPolicy(Match(exact="ops@x")), trust=world.trust())
    assert (
        verify_bundle(raw, Artifact(Digest.of(DATA), DATA), other).evidence[0]["code"]
        == "IDENTITY_MISMATCH"
    )
    mislogged = blob_bundle(world, "P-384", logged="sha256")
    assert (
        verify_bundle(mislogged, Artifact(Digest.of(DATA), DATA), policy(world)).evidence[0]["code"]
        == "TLOG_BODY_MISMATCH"
    )


def test_p384_bundle_with_a_forged_sct_is_refused(world: FakeSigstore) -> None:
    key, cert = world.leaf(curve=ec.SECP384R1(), sct_forged=True)
    signature = key.sign(DATA, ec.ECDSA(hashes.SHA384()))
    digest = Digest.of(DATA, "sha384")
    raw = message_signature_bundle(
        signature,
        digest=bytes.fromhex(digest.hex),
        digest_algorithm="SHA2_384",
        certificate=cert.public_bytes(serialization.Encoding.DER),
        tlog_entries=[world.log(rekor.hashedrekord_v001(digest, signature, world.pem(cert)))],
    ).to_json()
    verdict = verify_bundle(raw, Artifact(Digest.of(DATA), DATA), policy(world))
    assert verdict.evidence[0]["code"] == "SCT_INVALID"


def test_p384_dsse_bundle_verifies_on_safeguards_own_path(world: FakeSigstore) -> None:
    image = Digest.of(b"image manifest")
    key, cert = world.leaf(curve=ec.SECP384R1())
    statement = cosign_sign_statement(image)
    unsigned = Envelope("application/vnd.in-toto+json", statement, ())
    sig = key.sign(unsigned.pae(), ec.ECDSA(hashes.SHA384()))
    envelope = Envelope(unsigned.payload_type, statement, (Signature(sig, ""),))
    entry = world.log(rekor.dsse_v001(envelope.to_json(), world.pem(cert)))
    raw = dsse_bundle(
        envelope,
        certificate=cert.public_bytes(serialization.Encoding.DER),
        tlog_entries=[entry],
    ).to_json()
    verdict = verify_bundle(raw, Artifact(image), policy(world), Expectation())
    assert verdict.allowed, verdict.reasons
    assert verdict.evidence[0]["detail"]["sct"]["verified"] is True
    assert verdict.evidence[0]["payload"]["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
