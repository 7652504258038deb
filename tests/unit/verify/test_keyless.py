"""Keyless verification on real bundles made by Sigstore clients (see tests/fixtures/keyless)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier, policy

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput, VerificationFailed
from safeguard.verify.identity import IdentityPolicy, Match
from safeguard.verify.keyless import (
    load_trusted_root,
    parse_bundle,
    verify_artifact_bundle,
    verify_dsse_bundle,
)

F = Path(__file__).parents[2] / "fixtures" / "keyless"
WHL_SIGNER = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)
GH = "https://token.actions.githubusercontent.com"


@pytest.fixture(scope="module")
def public_good() -> TrustedRoot:
    return load_trusted_root(F / "public-good.trusted_root.json")


@pytest.fixture(scope="module")
def staging() -> TrustedRoot:
    return load_trusted_root(F / "staging.trusted_root.json")


def test_public_good_v02_bundle_with_identity(public_good: TrustedRoot) -> None:
    bundle = parse_bundle((F / "bundle_v3_github.whl.sigstore").read_bytes())
    artifact = (F / "bundle_v3_github.whl").read_bytes()
    ident = IdentityPolicy(
        Match(regexp=r"^https://github\.com/trailofbits/.*/release\.yml@refs/tags/v"),
        Match(exact=GH),
        {"source-repository-ref": "refs/tags/v0.1.2", "runner-environment": "github-hosted"},
    )
    evidence = verify_artifact_bundle(bundle, artifact, public_good, ident)
    assert evidence.identity.san == WHL_SIGNER
    assert evidence.log_index == 79605083
    assert evidence.integrated_time is not None and evidence.integrated_time.year == 2024
    # The same verdict from a digest instead of the bytes.
    verify_artifact_bundle(bundle, Digest.of(artifact), public_good, ident)
    # And sigstore-python alone agrees on the same input.
    Verifier(trusted_root=public_good).verify_artifact(
        artifact, bundle, policy.Identity(identity=WHL_SIGNER, issuer=GH)
    )


def test_staging_rekor_v2_bundle_takes_time_from_timestamps(staging: TrustedRoot) -> None:
    bundle = parse_bundle((F / "staging-rekor-v2.txt.sigstore.json").read_bytes())
    evidence = verify_artifact_bundle(
        bundle,
        (F / "staging-rekor-v2.txt").read_bytes(),
        staging,
        IdentityPolicy(Match(exact="jku@goto.fi"), Match(exact="https://github.com/login/oauth")),
    )
    assert evidence.entry_kind == "hashedrekord/0.0.2"
    assert evidence.integrated_time is None


def test_wrong_identity_is_named(public_good: TrustedRoot) -> None:
    bundle = parse_bundle((F / "bundle_v3_github.whl.sigstore").read_bytes())
    with pytest.raises(VerificationFailed, match=r"certificate identity .* does not match"):
        verify_artifact_bundle(
            bundle,
            (F / "bundle_v3_github.whl").read_bytes(),
            public_good,
            IdentityPolicy(Match(exact="https://github.com/evil/x"), Match(exact=GH)),
        )


def test_tampered_artifact_fails(public_good: TrustedRoot) -> None:
    bundle = parse_bundle((F / "bundle_v3_github.whl.sigstore").read_bytes())
    with pytest.raises(VerificationFailed, match=r"digest mismatch|invalid"):
        verify_artifact_bundle(
            bundle, (F / "bundle_v3_github.whl").read_bytes() + b"x", public_good, IdentityPolicy()
        )


def test_wrong_trust_root_fails(staging: TrustedRoot) -> None:
    bundle = parse_bundle((F / "bundle_v3_github.whl.sigstore").read_bytes())
    with pytest.raises(VerificationFailed):
        verify_artifact_bundle(
            bundle, (F / "bundle_v3_github.whl").read_bytes(), staging, IdentityPolicy()
        )


def test_dsse_bundle_returns_payload(staging: TrustedRoot) -> None:
    bundle = parse_bundle((F / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes())
    payload_type, payload, evidence = verify_dsse_bundle(bundle, staging, IdentityPolicy())
    assert payload_type == "application/vnd.in-toto+json"
    assert json.loads(payload)["_type"].startswith("https://in-toto.io/Statement")
    assert "extremely-dangerous" in (evidence.identity.san or "")


def test_hostile_bundles_and_roots(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        parse_bundle(b"{not json")
    raw = json.loads((F / "bundle_v3_github.whl.sigstore").read_text())
    del raw["verificationMaterial"]
    with pytest.raises(InvalidInput):
        parse_bundle(json.dumps(raw).encode())
    with pytest.raises(InvalidInput, match="does not exist"):
        load_trusted_root(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InvalidInput):
        load_trusted_root(bad)
