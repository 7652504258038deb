"""Legacy cosign ``.sig`` layers signed with P-384 keys: the signature is over the payload's
SHA-384 digest, and its ``hashedrekord`` entry records that digest (as ``safeguard sign`` logs
it), so the entry is bound with the key's hash, not the payload's SHA-256. Key-signed and
keyless (a P-384 Fulcio-profile leaf from the test CA), each with the hostile twin: an entry
recording the payload's SHA-256 digest binds nothing (``TLOG_BODY_MISMATCH``)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from safeguard.core.digest import Digest
from safeguard.formats import rekor
from safeguard.formats.bundle import TransparencyLogEntry
from safeguard.formats.cosign_sig import RekorBundle, SignatureLayer, new_signature_layer
from safeguard.formats.simplesigning import build_payload
from safeguard.keys.base import public_key_pem
from safeguard.verify.checks import Artifact, Candidate, Expectation, check
from safeguard.verify.identity import IdentityPolicy
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.verdict import SignatureCheck
from tests.unit.verify.fakesigstore import FakeSigstore

IMAGE = Digest.of(b"p384 manifest")
PAYLOAD = build_payload("registry.test/app", IMAGE)


@pytest.fixture(scope="module")
def world() -> FakeSigstore:
    return FakeSigstore()


def _rekor_bundle(entry: TransparencyLogEntry) -> RekorBundle:
    return RekorBundle(
        entry.signed_entry_timestamp or b"",
        entry.canonicalized_body,
        entry.integrated_time or 0,
        entry.log_index,
        entry.log_id.hex(),
    )


def _check(layer: SignatureLayer, policy: TrustPolicy) -> SignatureCheck:
    return check(Candidate("cosign-tag", "t", layer=layer), Artifact(IMAGE), policy, Expectation())


@pytest.mark.parametrize(("logged", "ok"), [("sha384", True), ("sha256", False)])
def test_key_signed_p384_layer_binds_the_sha384_entry(
    world: FakeSigstore, logged: str, ok: bool
) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    signature = key.sign(PAYLOAD, ec.ECDSA(hashes.SHA384()))
    pem = public_key_pem(key.public_key())
    entry = world.log(rekor.hashedrekord_v001(Digest.of(PAYLOAD, logged), signature, pem))
    layer = new_signature_layer(PAYLOAD, signature, bundle=_rekor_bundle(entry))
    result = _check(layer, TrustPolicy(keys=(key.public_key(),), trust=world.trust()))
    if ok:
        assert result.ok, result.reason
        assert result.log[0]["verified"] is True
    else:
        assert (result.ok, result.code) == (False, "TLOG_BODY_MISMATCH"), result.reason


@pytest.mark.parametrize(("logged", "ok"), [("sha384", True), ("sha256", False)])
def test_keyless_p384_layer_binds_the_sha384_entry(
    world: FakeSigstore, logged: str, ok: bool
) -> None:
    key, cert = world.leaf(curve=ec.SECP384R1())
    signature = key.sign(PAYLOAD, ec.ECDSA(hashes.SHA384()))
    body = rekor.hashedrekord_v001(Digest.of(PAYLOAD, logged), signature, world.pem(cert))
    layer = new_signature_layer(
        PAYLOAD,
        signature,
        certificate=world.pem(cert),
        chain=world.pem(world.intermediate) + world.pem(world.root),
        bundle=_rekor_bundle(world.log(body)),
    )
    result = _check(layer, TrustPolicy(identity=IdentityPolicy(), trust=world.trust()))
    if ok:
        assert result.ok, result.reason
        assert result.detail["sct"]["verified"] is True
    else:
        assert (result.ok, result.code) == (False, "TLOG_BODY_MISMATCH"), result.reason


def test_p256_layer_still_binds_sha256(world: FakeSigstore) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signature = key.sign(PAYLOAD, ec.ECDSA(hashes.SHA256()))
    pem = public_key_pem(key.public_key())
    entry = world.log(rekor.hashedrekord_v001(Digest.of(PAYLOAD), signature, pem))
    layer = new_signature_layer(PAYLOAD, signature, bundle=_rekor_bundle(entry))
    result = _check(layer, TrustPolicy(keys=(key.public_key(),), trust=world.trust()))
    assert result.ok, result.reason
