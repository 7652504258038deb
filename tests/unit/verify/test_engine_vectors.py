"""The engine on signatures other clients made: cosign's legacy .sig layers (containers/image
fixtures), sigstore-conformance bundles, sigstore-go's key-signed npm publish bundle."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from sigstore.models import Bundle as SigstoreBundle
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity

from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.formats.cosign_sig import SignatureLayer, parse_signature_layer
from safeguard.keys.base import load_public_key
from safeguard.verify.checks import Artifact, Candidate, Expectation, check
from safeguard.verify.engine import verify_bundle
from safeguard.verify.identity import IdentityPolicy, Match
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.trustroot import TrustMaterial, load_trust_material

FIX = Path(__file__).parents[2] / "fixtures"
CI = FIX / "vectors" / "containers-image"
CONF = FIX / "vectors" / "conformance"
GO = FIX / "vectors" / "sigstore-go"
KL = FIX / "keyless"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GH = "https://token.actions.githubusercontent.com"


@pytest.fixture(scope="module")
def public_good() -> TrustMaterial:
    return load_trust_material(KL / "public-good.trusted_root.json")


@pytest.fixture(scope="module")
def staging() -> TrustMaterial:
    return load_trust_material(KL / "staging.trusted_root.json")


def containers_image_layer(case: str) -> tuple[SignatureLayer, Digest]:
    """containers/image stores a cosign layer as ``\\0sigstore-json\\n`` + mimeType/payload/
    annotations; the signed image's manifest sits beside it."""
    raw = (CI / case / "signature-1").read_bytes()
    doc = json.loads(raw.split(b"\n", 1)[1])
    payload = base64.b64decode(doc["payload"])
    descriptor = Descriptor(doc["mimeType"], Digest.of(payload), len(payload), doc["annotations"])
    layer = parse_signature_layer(descriptor).with_payload(payload)
    return layer, Digest.of((CI / case / "manifest.json").read_bytes())


def key(path: Path) -> TrustPolicy:
    return TrustPolicy(keys=(load_public_key(path.read_bytes()),))


def test_cosign_key_signed_sig_layer() -> None:
    layer, digest = containers_image_layer("dir-img-cosign-valid")
    result = check(
        Candidate("cosign-tag", "t", layer=layer),
        Artifact(digest),
        key(CI / "cosign.pub"),
        Expectation(),
    )
    assert result.ok, result.reason
    assert result.payload is not None
    assert result.payload["critical"]["image"]["docker-manifest-digest"] == str(digest)
    # Another key: refused with the reason named.
    other = check(
        Candidate("cosign-tag", "t", layer=layer),
        Artifact(digest),
        key(CI / "cosign2.pub"),
        Expectation(),
    )
    assert (other.ok, other.code) == (False, "SIGNATURE_INVALID")
    # Another image: the signature is good, the digest is not.
    wrong = check(
        Candidate("cosign-tag", "t", layer=layer),
        Artifact(Digest.of(b"x")),
        key(CI / "cosign.pub"),
        Expectation(),
    )
    assert (wrong.ok, wrong.code) == (False, "DIGEST_MISMATCH")


def test_cosign_key_signed_layer_with_rekor_set(public_good: TrustMaterial) -> None:
    layer, digest = containers_image_layer("dir-img-cosign-key-rekor-valid")
    policy = TrustPolicy(
        keys=(load_public_key((CI / "cosign2.pub").read_bytes()),), trust=public_good
    )
    result = check(
        Candidate("cosign-tag", "t", layer=layer), Artifact(digest), policy, Expectation()
    )
    assert result.ok, result.reason
    assert result.log[0]["logIndex"] == 11608800 and result.log[0]["signedEntryTimestamp"]
    # The SET no longer matches once the entry body is altered.
    assert layer.bundle is not None
    from dataclasses import replace

    forged_bundle = replace(layer.bundle, integrated_time=layer.bundle.integrated_time + 1)
    forged = replace(layer, bundle=forged_bundle)
    bad = check(Candidate("cosign-tag", "t", layer=forged), Artifact(digest), policy, Expectation())
    assert (bad.ok, bad.code) == (False, "TLOG_SET_INVALID")
    # A trusted root without that log: the entry is from an unknown log.
    staging = load_trust_material(KL / "staging.trusted_root.json")
    unknown = check(
        Candidate("cosign-tag", "t", layer=layer),
        Artifact(digest),
        TrustPolicy(keys=policy.keys, trust=staging),
        Expectation(),
    )
    assert unknown.code == "TLOG_UNKNOWN_LOG"


def test_cosign_keyless_sig_layer(public_good: TrustMaterial) -> None:
    layer, digest = containers_image_layer("dir-img-cosign-fulcio-rekor-valid")
    ok_policy = TrustPolicy(
        identity=IdentityPolicy(
            Match(regexp=r"@redhat\.com$"), Match(exact="https://github.com/login/oauth")
        ),
        trust=public_good,
    )
    result = check(
        Candidate("cosign-tag", "t", layer=layer), Artifact(digest), ok_policy, Expectation()
    )
    assert result.ok, result.reason
    assert result.signer["certificate"]["subject"] == "mitr@redhat.com"
    bad_policy = TrustPolicy(
        identity=IdentityPolicy(Match(exact="someone@else")), trust=public_good
    )
    bad = check(
        Candidate("cosign-tag", "t", layer=layer), Artifact(digest), bad_policy, Expectation()
    )
    assert (bad.ok, bad.code) == (False, "IDENTITY_MISMATCH")
    staging = load_trust_material(KL / "staging.trusted_root.json")
    wrong_root = check(
        Candidate("cosign-tag", "t", layer=layer),
        Artifact(digest),
        TrustPolicy(identity=IdentityPolicy(), trust=staging),
        Expectation(),
    )
    assert not wrong_root.ok and wrong_root.code == "TLOG_UNKNOWN_LOG"
    # Only --key given: keyless material is refused, with that reason.
    only_key = check(
        Candidate("cosign-tag", "t", layer=layer),
        Artifact(digest),
        key(CI / "cosign.pub"),
        Expectation(),
    )
    assert only_key.code == "NO_IDENTITY_GIVEN"


A_TXT = (CONF / "a.txt").read_bytes()


@pytest.mark.parametrize(
    "case",
    [
        "happy-path-v0.1",
        "happy-path-v0.2",
        "happy-path-v0.3",
        "happy-path-v0.3-new-mediaType",
        "happy-path-intoto-in-dsse-v3",
    ],
)
def test_conformance_keyless_bundles(case: str, public_good: TrustMaterial) -> None:
    raw = (CONF / case / "bundle.sigstore.json").read_bytes()
    policy = TrustPolicy(
        identity=IdentityPolicy(Match(exact=BEACON), Match(exact=GH)), trust=public_good
    )
    verdict = verify_bundle(
        raw, Artifact(Digest.of(A_TXT), A_TXT), policy, Expectation(any_statement=True)
    )
    assert verdict.allowed, verdict.reasons
    wrong = TrustPolicy(
        identity=IdentityPolicy(Match(regexp="^https://github.com/evil/")), trust=public_good
    )
    refused = verify_bundle(
        raw, Artifact(Digest.of(A_TXT), A_TXT), wrong, Expectation(any_statement=True)
    )
    assert not refused.allowed and refused.evidence[0]["code"] == "IDENTITY_MISMATCH"


@pytest.mark.parametrize("case", ["rekor2-happy-path", "rekor2-dsse-happy-path"])
def test_conformance_rekor_v2_bundles(case: str, staging: TrustMaterial) -> None:
    raw = (CONF / case / "bundle.sigstore.json").read_bytes()
    policy = TrustPolicy(identity=IdentityPolicy(Match(exact=BEACON)), trust=staging)
    verdict = verify_bundle(
        raw, Artifact(Digest.of(A_TXT), A_TXT), policy, Expectation(any_statement=True)
    )
    assert verdict.allowed, verdict.reasons


def test_conformance_managed_key_bundle(public_good: TrustMaterial) -> None:
    raw = (CONF / "managed-key-happy-path" / "bundle.sigstore.json").read_bytes()
    pub = load_public_key((CONF / "managed-key-happy-path" / "key.pub").read_bytes())
    verdict = verify_bundle(
        raw, Artifact(Digest.of(A_TXT), A_TXT), TrustPolicy(keys=(pub,), trust=public_good)
    )
    assert verdict.allowed, verdict.reasons
    log = verdict.evidence[0]["tlog"][0]
    assert log["inclusionProof"] and log["signedEntryTimestamp"]
    assert log["checkpointOrigin"].startswith("rekor.sigstore.dev - ")
    # The same bundle over other bytes.
    other = verify_bundle(
        raw, Artifact(Digest.of(b"b"), b"b"), TrustPolicy(keys=(pub,), trust=public_good)
    )
    assert other.evidence[0]["code"] == "DIGEST_MISMATCH"


def test_sigstore_go_key_signed_v01_intoto_bundle(public_good: TrustMaterial) -> None:
    raw = (GO / "bundle-publish.json").read_bytes()
    statement = json.loads(base64.b64decode(json.loads(raw)["dsseEnvelope"]["payload"]))
    digest = Digest.parse("sha512:" + statement["subject"][0]["digest"]["sha512"])
    pub = load_public_key((GO / "publish_key.pub").read_bytes())
    verdict = verify_bundle(
        raw,
        Artifact(digest),
        TrustPolicy(keys=(pub,), trust=public_good),
        Expectation(any_statement=True),
    )
    assert verdict.allowed, verdict.reasons
    assert verdict.evidence[0]["tlog"][0]["kind"] == "intoto/0.0.2"
    other = verify_bundle(
        raw,
        Artifact(Digest.of(b"x", "sha512")),
        TrustPolicy(keys=(pub,), trust=public_good),
        Expectation(any_statement=True),
    )
    assert other.evidence[0]["code"] == "SUBJECT_MISMATCH"


def test_keyless_blob_agrees_with_sigstore_python(public_good: TrustMaterial) -> None:
    artifact = (KL / "bundle_v3_github.whl").read_bytes()
    raw = (KL / "bundle_v3_github.whl.sigstore").read_bytes()
    signer = (
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
    )
    for pattern, expected in (
        (r"^https://github\.com/trailofbits/", True),
        (r"^https://github\.com/evil/", False),
    ):
        policy = TrustPolicy(
            identity=IdentityPolicy(Match(regexp=pattern), Match(exact=GH)), trust=public_good
        )
        verdict = verify_bundle(raw, Artifact(Digest.of(artifact), artifact), policy)
        assert verdict.allowed is expected, verdict.reasons
    # sigstore-python on the same input gives the same answers.
    Verifier(trusted_root=public_good.sigstore_root()).verify_artifact(
        artifact, SigstoreBundle.from_json(raw), Identity(identity=signer, issuer=GH)
    )
    from sigstore.errors import VerificationError

    with pytest.raises(VerificationError):
        Verifier(trusted_root=public_good.sigstore_root()).verify_artifact(
            artifact,
            SigstoreBundle.from_json(raw),
            Identity(identity="https://github.com/evil/x", issuer=GH),
        )


@pytest.mark.parametrize(
    "case",
    [
        "bundle-malformed-json_fail",
        "bundle-invalid-base64-signature_fail",
        "bundle-negative-log-index_fail",
        "bundle-unknown-version_fail",
        "bundle-empty-certificate-chain_fail",
        "intoto-missing-inclusion-proof_fail",
        "rekor2-no-inclusion-proof_fail",
    ],
)
def test_conformance_failure_bundles_are_refused(case: str, public_good: TrustMaterial) -> None:
    raw = (CONF / case / "bundle.sigstore.json").read_bytes()
    artifact = (
        (CONF / case / "artifact").read_bytes() if (CONF / case / "artifact").exists() else A_TXT
    )
    verdict = verify_bundle(
        raw,
        Artifact(Digest.of(artifact), artifact),
        TrustPolicy(identity=IdentityPolicy(), trust=public_good),
        Expectation(any_statement=True),
    )
    assert not verdict.allowed
    assert verdict.evidence[0]["code"] in {
        "BUNDLE_INVALID",
        "KEYLESS_INVALID",
        "TLOG_NO_PROOF",
        "NO_SIGNING_TIME",
        "TLOG_UNKNOWN_LOG",
        "CERT_CHAIN_INVALID",
    }, verdict.evidence
