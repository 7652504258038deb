"""Embedded SCTs on Safeguard's own keyless path (``safeguard.verify.sct``, RFC 6962 §3.2/§3.4).

The real public-good legacy cosign keyless ``.sig`` layer (containers/image fixture) carries an
SCT from ``ctfe.sigstore.dev/2022`` that verifies against the public-good trusted root's
``ctlogs``; sigstore-python's own (private) SCT check agrees on it and on test certificates.
Test certificates (``fakesigstore``) with a forged SCT, an SCT from a log the root does not list,
no SCT, an SCT outside the CT key's validity or an unreadable SCT list are refused by name.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore._internal.sct import verify_sct
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import VerificationError

from safeguard.core.digest import Digest
from safeguard.formats import rekor
from safeguard.formats.cosign_sig import RekorBundle, SignatureLayer, new_signature_layer
from safeguard.formats.simplesigning import build_payload
from safeguard.verify.checks import Artifact, Candidate, Expectation, check
from safeguard.verify.engine import verify_bundle
from safeguard.verify.errors import CheckFailed
from safeguard.verify.identity import IdentityPolicy
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.sct import timestamp_ms, verify_embedded_scts
from safeguard.verify.trustroot import TrustMaterial, load_trust_material, parse_trusted_root
from safeguard.verify.verdict import SignatureCheck
from tests.unit.verify.fakesigstore import FakeSigstore
from tests.unit.verify.test_engine_local import ART, _v01_keyless
from tests.unit.verify.test_engine_vectors import CI, KL, containers_image_layer

IMAGE = Digest.of(b"manifest")


@pytest.fixture(scope="module")
def public_good() -> TrustMaterial:
    return load_trust_material(KL / "public-good.trusted_root.json")


@pytest.fixture(scope="module")
def world() -> FakeSigstore:
    return FakeSigstore()


def legacy_layer(world: FakeSigstore, **leaf: Any) -> SignatureLayer:
    """A cosign keyless ``.sig`` layer for ``IMAGE``, logged, with the leaf ``leaf`` makes."""
    payload = build_payload("registry.test/app", IMAGE)
    key, cert = world.leaf(**leaf)
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    entry = world.log(rekor.hashedrekord_v001(Digest.of(payload), signature, world.pem(cert)))
    rb = RekorBundle(
        entry.signed_entry_timestamp or b"",
        entry.canonicalized_body,
        entry.integrated_time or 0,
        entry.log_index,
        entry.log_id.hex(),
    )
    return new_signature_layer(
        payload,
        signature,
        certificate=world.pem(cert),
        chain=world.pem(world.intermediate) + world.pem(world.root),
        bundle=rb,
    )


def check_layer(layer: SignatureLayer, trust: TrustMaterial) -> SignatureCheck:
    policy = TrustPolicy(identity=IdentityPolicy(), trust=trust)
    return check(Candidate("cosign-tag", "t", layer=layer), Artifact(IMAGE), policy, Expectation())


def real_certificate() -> tuple[x509.Certificate, list[x509.Certificate]]:
    raw = (CI / "dir-img-cosign-fulcio-rekor-valid" / "signature-1").read_bytes()
    annotations = json.loads(raw.split(b"\n", 1)[1])["annotations"]
    cert = x509.load_pem_x509_certificate(annotations["dev.sigstore.cosign/certificate"].encode())
    chain = x509.load_pem_x509_certificates(annotations["dev.sigstore.cosign/chain"].encode())
    return cert, chain


def sigstore_python_accepts(
    cert: x509.Certificate, chain: list[x509.Certificate], trust: TrustMaterial
) -> bool:
    """sigstore-python's verdict (private API, used in tests only) on the same certificate."""
    try:
        verify_sct(cert, chain, trust.sigstore_root().ct_keyring(KeyringPurpose.VERIFY))
    except VerificationError:
        return False
    return True


def safeguard_accepts(
    cert: x509.Certificate, chain: list[x509.Certificate], trust: TrustMaterial
) -> bool:
    try:
        verify_embedded_scts(cert, chain[0], trust)
    except CheckFailed:
        return False
    return True


# --- real public-good material ----------------------------------------------------------------


def test_public_good_legacy_keyless_layer_sct_verifies(public_good: TrustMaterial) -> None:
    layer, digest = containers_image_layer("dir-img-cosign-fulcio-rekor-valid")
    policy = TrustPolicy(identity=IdentityPolicy(), trust=public_good)
    result = check(
        Candidate("cosign-tag", "t", layer=layer), Artifact(digest), policy, Expectation()
    )
    assert result.ok, result.reason
    assert result.detail["sct"] == {
        "logId": "dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e",
        "log": "https://ctfe.sigstore.dev/2022",
        "timestamp": "2023-01-20T20:51:31.374000+00:00",
        "verified": True,
    }


def test_public_good_sct_agrees_with_sigstore_python(public_good: TrustMaterial) -> None:
    cert, chain = real_certificate()
    assert safeguard_accepts(cert, chain, public_good)
    assert sigstore_python_accepts(cert, chain, public_good)
    # The root as issuer: the issuer key hash is wrong, and both refuse.
    assert not safeguard_accepts(cert, chain[1:], public_good)
    assert not sigstore_python_accepts(cert, chain[1:], public_good)
    with pytest.raises(CheckFailed) as info:
        verify_embedded_scts(cert, chain[1], public_good)
    assert info.value.reason_code == "SCT_INVALID"


def test_public_good_sct_against_the_test_log_key(public_good: TrustMaterial) -> None:
    """The SCT was made in January 2023, after the ``ctfe.sigstore.dev/test`` key's window
    ended (October 2022); a root listing only that log refuses it as from an unknown log, and
    one whose 2022 key only starts later refuses it as outside the key's validity."""
    cert, chain = real_certificate()
    doc = json.loads(public_good.raw)
    test_only = {**doc, "ctlogs": [doc["ctlogs"][0]]}
    with pytest.raises(CheckFailed) as info:
        verify_embedded_scts(cert, chain[0], _root(test_only))
    assert info.value.reason_code == "SCT_UNKNOWN_LOG"
    later = json.loads(json.dumps(doc))
    later["ctlogs"][1]["publicKey"]["validFor"] = {"start": "2023-06-01T00:00:00Z"}
    with pytest.raises(CheckFailed) as info:
        verify_embedded_scts(cert, chain[0], _root(later))
    assert info.value.reason_code == "SCT_LOG_OUTSIDE_VALIDITY"


def _root(doc: dict[str, Any]) -> TrustMaterial:
    return parse_trusted_root(json.dumps(doc).encode())


# --- test CA and CT log -----------------------------------------------------------------------


def test_fake_sct_verifies_and_agrees_with_sigstore_python(world: FakeSigstore) -> None:
    trust = world.trust()
    result = check_layer(legacy_layer(world), trust)
    assert result.ok, result.reason
    assert result.detail["sct"]["log"] == "https://ct.safeguard.test"
    assert result.detail["sct"]["verified"] is True
    chain = [world.intermediate, world.root]
    for leaf, expected in (
        (world.leaf()[1], True),
        (world.leaf(sct_forged=True)[1], False),
        (world.leaf(sct_keys=[ec.generate_private_key(ec.SECP256R1())])[1], False),
    ):
        assert safeguard_accepts(leaf, chain, trust) is expected
        assert sigstore_python_accepts(leaf, chain, trust) is expected


@pytest.mark.parametrize(
    ("leaf", "code"),
    [
        ({"sct_forged": True}, "SCT_INVALID"),
        ({"sct_keys": "stranger"}, "SCT_UNKNOWN_LOG"),
        ({"sct_keys": []}, "SCT_MISSING"),
        # An SCT list that is not one: the certificate's extensions cannot be read.
        ({"sct_extension": b"\x04\x03abc"}, "CERT_INVALID"),
    ],
)
def test_bad_scts_are_refused_by_name(world: FakeSigstore, leaf: dict[str, Any], code: str) -> None:
    if leaf.get("sct_keys") == "stranger":
        leaf = {"sct_keys": [ec.generate_private_key(ec.SECP256R1())]}
    result = check_layer(legacy_layer(world, **leaf), world.trust())
    assert (result.ok, result.code) == (False, code), result.reason


def test_ct_key_outside_its_validity() -> None:
    expired = FakeSigstore(ct_valid_until=dt.datetime(2023, 12, 31, tzinfo=dt.UTC))
    result = check_layer(legacy_layer(expired), expired.trust())
    assert (result.ok, result.code) == (False, "SCT_LOG_OUTSIDE_VALIDITY"), result.reason
    not_yet = FakeSigstore(ct_valid_from=dt.datetime(2024, 2, 1, tzinfo=dt.UTC))
    result = check_layer(legacy_layer(not_yet), not_yet.trust())
    assert (result.ok, result.code) == (False, "SCT_LOG_OUTSIDE_VALIDITY"), result.reason


def test_one_good_sct_among_several_is_enough(world: FakeSigstore) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    result = check_layer(legacy_layer(world, sct_keys=[stranger, world.ct_key]), world.trust())
    assert result.ok, result.reason
    both_bad = check_layer(legacy_layer(world, sct_keys=[stranger, stranger]), world.trust())
    assert both_bad.code == "SCT_UNKNOWN_LOG"
    assert "none of the certificate's 2 SCTs verifies" in both_bad.reason


def test_no_ct_logs_in_the_root_means_no_sct_check() -> None:
    private = FakeSigstore(ct_log=False)
    result = check_layer(legacy_layer(private, sct_keys=[]), private.trust())
    assert result.ok, result.reason
    assert result.detail["sct"] == {
        "verified": False,
        "note": "not checked: the trusted root lists no CT logs",
    }


def test_sct_checked_on_v01_bundles_too(world: FakeSigstore) -> None:
    policy = TrustPolicy(identity=IdentityPolicy(), trust=world.trust())
    verdict = verify_bundle(_v01_keyless(world), ART, policy)
    assert verdict.allowed, verdict.reasons
    assert verdict.evidence[0]["detail"]["sct"]["verified"] is True


def test_timestamp_ms_is_exact() -> None:
    when = dt.datetime(2023, 1, 20, 20, 51, 31, 374000)
    assert timestamp_ms(when) == 1674247891374
    assert timestamp_ms(when.replace(tzinfo=dt.UTC)) == 1674247891374
