"""The engine on material made here: key-signed bundles with and without log entries, keyless
material checked by Safeguard's own path (v0.1 bundles, legacy layers) with a test CA and log,
each refusal with its named reason; the verdict cache."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput
from safeguard.formats import rekor
from safeguard.formats.bundle import (
    MEDIA_TYPE_V01,
    Bundle,
    HashOutput,
    MessageSignature,
    VerificationMaterial,
)
from safeguard.formats.cosign_sig import RekorBundle, new_signature_layer
from safeguard.formats.simplesigning import build_payload
from safeguard.keys import SoftwareSigner
from safeguard.signing.sign import attest_blob, cosign_sign_statement, sign_blob
from safeguard.verify.cache import VerdictCache
from safeguard.verify.checks import Artifact, Candidate, Expectation, check
from safeguard.verify.engine import verify_bundle
from safeguard.verify.identity import IdentityPolicy, Match
from safeguard.verify.logentry import entry_from_rekor_bundle
from safeguard.verify.policy import TrustPolicy
from tests.unit.verify.fakesigstore import FakeSigstore

DATA = b"release artifact\n"
ART = Artifact(Digest.of(DATA), DATA, "file")


@pytest.fixture(scope="module")
def world() -> FakeSigstore:
    return FakeSigstore()


def code(verdict: object) -> str:
    return verdict.evidence[0]["code"]  # type: ignore[attr-defined]


def test_key_bundle_round_trip_and_tamper() -> None:
    signer = SoftwareSigner.generate()
    raw = sign_blob(DATA, signer).to_json()
    policy = TrustPolicy(keys=(signer.public_key,))
    assert verify_bundle(raw, ART, policy).allowed
    assert verify_bundle(raw, Artifact(ART.digest), policy).allowed  # digest only (sha256:<hex>)
    assert (
        code(verify_bundle(raw, Artifact(Digest.of(b"other"), b"other"), policy))
        == "DIGEST_MISMATCH"
    )
    other = TrustPolicy(keys=(SoftwareSigner.generate().public_key,))
    assert code(verify_bundle(raw, ART, other)) == "SIGNATURE_INVALID"
    doc = json.loads(raw)
    doc["messageSignature"]["signature"] = doc["messageSignature"]["signature"][:-8] + "AAAAAAA="
    assert code(verify_bundle(json.dumps(doc).encode(), ART, policy)) in {
        "SIGNATURE_INVALID",
        "BUNDLE_INVALID",
    }
    for hostile in (b"{", b"[]", b'{"mediaType":"x"}', raw[: len(raw) // 2]):
        verdict = verify_bundle(hostile, ART, policy)
        assert not verdict.allowed and code(verdict) == "BUNDLE_INVALID"


def test_dsse_blob_bundle_subject_and_type() -> None:
    signer = SoftwareSigner.generate()
    bundle = attest_blob(ART.digest, "file", signer, "https://slsa.dev/provenance/v1", {"x": 1})
    policy = TrustPolicy(keys=(signer.public_key,))
    assert verify_bundle(bundle.to_json(), ART, policy, Expectation(any_statement=True)).allowed
    assert verify_bundle(
        bundle.to_json(), ART, policy, Expectation(True, "https://slsa.dev/provenance/v1")
    ).allowed
    wrong_type = verify_bundle(
        bundle.to_json(), ART, policy, Expectation(True, "https://cyclonedx.org/bom")
    )
    assert code(wrong_type) == "PREDICATE_TYPE_MISMATCH"
    other = Artifact(Digest.of(b"x"), b"x")
    assert (
        code(verify_bundle(bundle.to_json(), other, policy, Expectation(any_statement=True)))
        == "SUBJECT_MISMATCH"
    )
    # A truncated envelope payload.
    doc = json.loads(bundle.to_json())
    doc["dsseEnvelope"]["payload"] = doc["dsseEnvelope"]["payload"][:20]
    assert not verify_bundle(
        json.dumps(doc).encode(), ART, policy, Expectation(any_statement=True)
    ).allowed


def test_cosign_sign_statement_is_cosigns_shape() -> None:
    digest = Digest.of(b"m")
    raw = cosign_sign_statement(digest)
    assert raw == (
        b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"'
        + digest.hex.encode()
        + b'"},"annotations":{}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}'
    )


def test_log_required_when_trusted_root_has_logs(world: FakeSigstore) -> None:
    signer = SoftwareSigner.generate()
    trust = world.trust()
    unlogged = sign_blob(DATA, signer).to_json()
    strict = TrustPolicy(keys=(signer.public_key,), trust=trust)
    assert code(verify_bundle(unlogged, ART, strict)) == "TLOG_MISSING"
    lenient = TrustPolicy(keys=(signer.public_key,), trust=trust, ignore_tlog=True)
    assert verify_bundle(unlogged, ART, lenient).allowed
    logged = sign_blob(DATA, signer, tlog=world.log).to_json()
    verdict = verify_bundle(logged, ART, strict)
    assert verdict.allowed, verdict.reasons
    assert verdict.evidence[0]["tlog"][0]["verified"]
    # Without any trusted root the entry is recorded, not checked.
    keyonly = verify_bundle(logged, ART, TrustPolicy(keys=(signer.public_key,)))
    assert keyonly.allowed and keyonly.evidence[0]["tlog"][0]["verified"] is False
    # An entry for another signature is refused (CVE-2022-36056's lesson).
    other_entry = world.log(rekor.hashedrekord_v001(Digest.of(b"x"), b"sig", signer.public_key_pem))
    swapped = Bundle.from_json(logged)
    vm = replace(swapped.verification_material, tlog_entries=(other_entry,))
    forged = replace(swapped, verification_material=vm).to_json()
    assert code(verify_bundle(forged, ART, strict)) == "TLOG_BODY_MISMATCH"


def test_log_key_outside_its_validity(world: FakeSigstore) -> None:
    expired = FakeSigstore(log_valid_until=world.start + dt.timedelta(days=1))
    signer = SoftwareSigner.generate()
    late = lambda body: expired.log(body, expired.start + dt.timedelta(days=2))  # noqa: E731
    raw = sign_blob(DATA, signer, tlog=late).to_json()
    verdict = verify_bundle(raw, ART, TrustPolicy(keys=(signer.public_key,), trust=expired.trust()))
    assert code(verdict) == "TLOG_KEY_OUTSIDE_VALIDITY"


def _v01_keyless(
    world: FakeSigstore, *, cert_start: dt.datetime | None = None, with_root: bool = False
) -> bytes:
    key, cert = world.leaf(not_before=cert_start)
    signature = key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    # v0.1: a SET only, which sigstore-python does not load, so Safeguard's own path runs.
    entry = replace(
        world.log(rekor.hashedrekord_v001(ART.digest, signature, world.pem(cert))),
        inclusion_proof=None,
    )
    chain = [cert, world.intermediate] + ([world.root] if with_root else [])
    material = VerificationMaterial(
        certificate_chain=tuple(c.public_bytes(serialization.Encoding.DER) for c in chain),
        tlog_entries=(entry,),
    )
    return Bundle(
        MEDIA_TYPE_V01,
        material,
        MessageSignature(signature, HashOutput("SHA2_256", bytes.fromhex(ART.digest.hex))),
    ).to_json()


def test_v01_keyless_bundle_own_path(world: FakeSigstore) -> None:
    trust = world.trust()
    ok = TrustPolicy(identity=IdentityPolicy(Match(exact="dev@safeguard.test")), trust=trust)
    verdict = verify_bundle(_v01_keyless(world), ART, ok)
    assert verdict.allowed, verdict.reasons
    wrong = TrustPolicy(identity=IdentityPolicy(Match(regexp="^ops@")), trust=trust)
    assert code(verify_bundle(_v01_keyless(world), ART, wrong)) == "IDENTITY_MISMATCH"
    # The leaf expired before the log saw the signature.
    stale = _v01_keyless(world, cert_start=world.start - dt.timedelta(hours=1))
    assert code(verify_bundle(stale, ART, ok)) == "CERT_OUTSIDE_VALIDITY"
    # A root inside the bundle's chain.
    assert (
        code(verify_bundle(_v01_keyless(world, with_root=True), ART, ok))
        == "CERT_CHAIN_CONTAINS_ROOT"
    )
    # Another CA's trusted root.
    assert (
        code(
            verify_bundle(
                _v01_keyless(world),
                ART,
                TrustPolicy(identity=IdentityPolicy(), trust=FakeSigstore().trust()),
            )
        )
        == "TLOG_UNKNOWN_LOG"
    )


def test_ca_outside_its_validity() -> None:
    world = FakeSigstore(ca_valid_until=dt.datetime(2024, 1, 1, 0, 0, 30, tzinfo=dt.UTC))
    policy = TrustPolicy(identity=IdentityPolicy(), trust=world.trust())
    assert code(verify_bundle(_v01_keyless(world), ART, policy)) == "CA_OUTSIDE_VALIDITY"


def test_legacy_keyless_layer_own_path(world: FakeSigstore) -> None:
    image = Digest.of(b"manifest")
    payload = build_payload("registry.test/app", image)
    key, cert = world.leaf()
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    entry = world.log(rekor.hashedrekord_v001(Digest.of(payload), signature, world.pem(cert)))
    rb = RekorBundle(
        entry.signed_entry_timestamp or b"",
        entry.canonicalized_body,
        entry.integrated_time or 0,
        entry.log_index,
        entry.log_id.hex(),
    )
    chain = world.pem(world.intermediate) + world.pem(
        world.root
    )  # cosign writes Fulcio's full chain
    layer = new_signature_layer(
        payload, signature, certificate=world.pem(cert), chain=chain, bundle=rb
    )
    policy = TrustPolicy(
        identity=IdentityPolicy(Match(exact="dev@safeguard.test"), Match(regexp="safeguard")),
        trust=world.trust(),
    )
    result = check(
        Candidate("cosign-tag", "x", layer=layer), Artifact(image), policy, Expectation()
    )
    assert result.ok, result.reason
    assert entry_from_rekor_bundle(rb).kind == "hashedrekord"
    # A chain ending in a root the trusted root does not know.
    stranger = FakeSigstore()
    bad_chain = replace(layer, chain=world.pem(world.intermediate) + stranger.pem(stranger.root))
    bad = check(
        Candidate("cosign-tag", "x", layer=bad_chain), Artifact(image), policy, Expectation()
    )
    assert bad.code == "CERT_UNTRUSTED_ROOT"


def test_policy_needs_something_to_trust() -> None:
    with pytest.raises(InvalidInput):
        TrustPolicy()
    with pytest.raises(InvalidInput, match="trusted root"):
        TrustPolicy(identity=IdentityPolicy())


def test_verdict_cache_is_fast_and_keyed() -> None:
    signer = SoftwareSigner.generate()
    policy = TrustPolicy(keys=(signer.public_key,))
    verdict = verify_bundle(sign_blob(DATA, signer).to_json(), ART, policy)
    cache = VerdictCache()
    key = VerdictCache.key(
        str(ART.digest), ("sha256:" + "a" * 64,), policy.fingerprint, Expectation()
    )
    assert cache.get(key) is None
    cache.put(key, verdict)
    hit = cache.get(key)
    assert hit is not None and hit.cached and hit.allowed
    other = TrustPolicy(keys=(SoftwareSigner.generate().public_key,))
    assert other.fingerprint != policy.fingerprint
    assert (
        cache.get(
            VerdictCache.key(
                str(ART.digest), ("sha256:" + "a" * 64,), other.fingerprint, Expectation()
            )
        )
        is None
    )
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        cache.get(key)
    assert (time.perf_counter() - start) / rounds < 0.0002
    now = [0.0]
    expiring = VerdictCache(ttl=1.0, clock=lambda: now[0])
    expiring.put(key, verdict)
    now[0] = 2.0
    assert expiring.get(key) is None
