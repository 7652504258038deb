"""A DSSE envelope with several signatures: the log entry must bind the signature that verified.

Keyless material on Safeguard's own path (v0.1 bundles with only a SET, legacy ``.att`` layers)
and key-signed envelopes: the signature that verifies with the leaf certificate's key (or one of
the given keys) need not be the envelope's first, and the log entry that records it is accepted.
An entry that records only a signature that did not verify, or another key's, is still refused
(``TLOG_BODY_MISMATCH``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from safeguard.core.digest import Digest
from safeguard.formats import rekor
from safeguard.formats.bundle import MEDIA_TYPE_V01, Bundle, VerificationMaterial, dsse_bundle
from safeguard.formats.cosign_sig import RekorBundle, new_attestation_layer
from safeguard.formats.dsse import Envelope, Signature, pae
from safeguard.formats.intoto import PAYLOAD_TYPE, Subject, build_statement
from safeguard.keys import SoftwareSigner
from safeguard.keys.base import key_id_for
from safeguard.verify.checks import Artifact, Candidate, Expectation, check
from safeguard.verify.engine import verify_bundle
from safeguard.verify.identity import IdentityPolicy, Match
from safeguard.verify.policy import TrustPolicy
from tests.unit.verify.fakesigstore import FakeSigstore

DATA = b"multi-signed artifact\n"
ART = Artifact(Digest.of(DATA), DATA, "file")
PREDICATE = "https://slsa.dev/provenance/v1"
EXPECT = Expectation(True, PREDICATE)


@pytest.fixture(scope="module")
def world() -> FakeSigstore:
    return FakeSigstore()


def _statement(digest: Digest) -> bytes:
    return build_statement([Subject.for_digest("file", digest)], PREDICATE, {"n": 1}).to_json()


def _envelope(payload: bytes, *signers: object) -> Envelope:
    message = pae(PAYLOAD_TYPE, payload)
    signatures = []
    for signer in signers:
        if isinstance(signer, SoftwareSigner):
            signatures.append(Signature(signer.sign(message)))
        else:
            assert isinstance(signer, ec.EllipticCurvePrivateKey)
            signatures.append(Signature(signer.sign(message, ec.ECDSA(hashes.SHA256()))))
    return Envelope(PAYLOAD_TYPE, payload, tuple(signatures))


def _v01(world: FakeSigstore, envelope: Envelope, logged: bytes, cert: object) -> bytes:
    """A v0.1 DSSE bundle (SET only: Safeguard's own keyless path) logging ``logged``."""
    entry = replace(world.log(logged), inclusion_proof=None)
    chain = [cert, world.intermediate]
    material = VerificationMaterial(
        certificate_chain=tuple(c.public_bytes(serialization.Encoding.DER) for c in chain),  # type: ignore[attr-defined]
        tlog_entries=(entry,),
    )
    return Bundle(MEDIA_TYPE_V01, material, dsse_envelope=envelope).to_json()


def _keyless_policy(world: FakeSigstore) -> TrustPolicy:
    return TrustPolicy(
        identity=IdentityPolicy(Match(exact="dev@safeguard.test")), trust=world.trust()
    )


def test_keyless_bundle_binds_the_signature_that_verified(world: FakeSigstore) -> None:
    key, cert = world.leaf()
    other = SoftwareSigner.generate()
    envelope = _envelope(_statement(ART.digest), other, key)  # the leaf's signature is second
    pems = [other.public_key_pem, world.pem(cert)]
    logged = rekor.dsse_v001(envelope.to_json(), pems)
    verdict = verify_bundle(
        _v01(world, envelope, logged, cert), ART, _keyless_policy(world), EXPECT
    )
    assert verdict.allowed, verdict.reasons
    assert verdict.evidence[0]["tlog"][0]["verified"]
    # The leaf's signature first works as before.
    first = _envelope(_statement(ART.digest), key, other)
    logged = rekor.dsse_v001(first.to_json(), [world.pem(cert), other.public_key_pem])
    assert verify_bundle(
        _v01(world, first, logged, cert), ART, _keyless_policy(world), EXPECT
    ).allowed


def test_keyless_bundle_refuses_an_entry_of_another_signature(world: FakeSigstore) -> None:
    key, cert = world.leaf()
    other = SoftwareSigner.generate()
    payload = _statement(ART.digest)
    envelope = _envelope(payload, other, key)
    # The log records only the other key's signature: nothing binds the leaf's signature.
    only_other = Envelope(PAYLOAD_TYPE, payload, envelope.signatures[:1])
    logged = rekor.dsse_v001(only_other.to_json(), other.public_key_pem)
    verdict = verify_bundle(
        _v01(world, envelope, logged, cert), ART, _keyless_policy(world), EXPECT
    )
    assert not verdict.allowed
    assert verdict.evidence[0]["code"] == "TLOG_BODY_MISMATCH"
    # The other key's signature recorded under the leaf's certificate is no binding either.
    forged = rekor.dsse_v001(only_other.to_json(), world.pem(cert))
    verdict = verify_bundle(
        _v01(world, envelope, forged, cert), ART, _keyless_policy(world), EXPECT
    )
    assert verdict.evidence[0]["code"] == "TLOG_BODY_MISMATCH"
    # No signature by the leaf at all.
    unsigned = _envelope(payload, other)
    logged = rekor.dsse_v001(unsigned.to_json(), other.public_key_pem)
    verdict = verify_bundle(
        _v01(world, unsigned, logged, cert), ART, _keyless_policy(world), EXPECT
    )
    assert verdict.evidence[0]["code"] == "SIGNATURE_INVALID"


def test_legacy_keyless_attestation_layer_binds_the_signature_that_verified(
    world: FakeSigstore,
) -> None:
    image = Digest.of(b"manifest")
    key, cert = world.leaf()
    other = SoftwareSigner.generate()
    envelope = _envelope(_statement(image), other, key)
    raw = envelope.to_json()

    def layer_for(logged: bytes) -> Candidate:
        entry = world.log(logged, world.start + dt.timedelta(minutes=2))
        rb = RekorBundle(
            entry.signed_entry_timestamp or b"",
            entry.canonicalized_body,
            entry.integrated_time or 0,
            entry.log_index,
            entry.log_id.hex(),
        )
        layer = new_attestation_layer(
            raw,
            PREDICATE,
            certificate=world.pem(cert),
            chain=world.pem(world.intermediate) + world.pem(world.root),
            bundle=rb,
        )
        return Candidate("cosign-tag", "x", layer=layer)

    policy = _keyless_policy(world)
    good = layer_for(rekor.dsse_v001(raw, [other.public_key_pem, world.pem(cert)]))
    result = check(good, Artifact(image), policy, EXPECT)
    assert result.ok, result.reason
    only_other = Envelope(PAYLOAD_TYPE, envelope.payload, envelope.signatures[:1]).to_json()
    bad = layer_for(rekor.dsse_v001(only_other, other.public_key_pem))
    assert check(bad, Artifact(image), policy, EXPECT).code == "TLOG_BODY_MISMATCH"


def test_key_signed_envelope_binds_the_logged_key(world: FakeSigstore) -> None:
    first, second, stranger = (SoftwareSigner.generate() for _ in range(3))
    payload = _statement(ART.digest)
    envelope = _envelope(payload, first, second)
    # Only the second key's signature is logged (as if the first co-signed offline).
    logged_envelope = Envelope(PAYLOAD_TYPE, payload, envelope.signatures[1:])
    entry = world.log(rekor.dsse_v001(logged_envelope.to_json(), second.public_key_pem))
    raw = dsse_bundle(envelope, public_key_hint="k", tlog_entries=(entry,)).to_json()
    policy = TrustPolicy(keys=(first.public_key, second.public_key), trust=world.trust())
    verdict = verify_bundle(raw, ART, policy, EXPECT)
    assert verdict.allowed, verdict.reasons
    result = check(Candidate("file", "x", bundle_json=raw), ART, policy, EXPECT)
    assert result.signer["keyId"] == key_id_for(second.public_key)
    # A log entry by a key that is not given binds nothing.
    third = _envelope(payload, first, stranger)
    entry = world.log(
        rekor.dsse_v001(
            Envelope(PAYLOAD_TYPE, payload, third.signatures[1:]).to_json(),
            stranger.public_key_pem,
        )
    )
    raw = dsse_bundle(third, public_key_hint="k", tlog_entries=(entry,)).to_json()
    verdict = verify_bundle(raw, ART, policy, EXPECT)
    assert verdict.evidence[0]["code"] == "TLOG_BODY_MISMATCH"
