"""The signing service core against real components: SoftHSM2 keys through PKCS#11, the real test
OIDC issuer (discovery + JWKS over HTTP), the log service object and the audit trail in SQLite.

Every path: GitHub and GitLab tokens signing, attestations (generated provenance and a given
statement), and every refusal with the reason it gets — wrong branch, repository, workflow,
expired token, wrong audience, unknown key, ``alg: none``, HMAC key confusion, team A publishing
into team B's namespace, rate limit, retired key — each recorded in the audit trail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard.core.digest import Digest
from safeguard.core.errors import SafeguardError
from safeguard.formats.intoto import PAYLOAD_TYPE, STATEMENT_V1
from safeguard.formats.rekor import parse_entry
from safeguard.formats.simplesigning import parse_payload
from safeguard.keys.base import load_public_key, verify_signature
from safeguard.signing.errors import (
    RateLimited,
    SigningKeyRetired,
    SigningNotAuthorized,
    SigningRequestInvalid,
    SigningTokenMissing,
)
from safeguard.signing.service import SignResult, http_status
from safeguard.tlog import merkle
from tests.fixtures import softhsm
from tests.fixtures.oidc import ServedIssuer, oidc_issuer
from tests.unit.signing.env import REGISTRY, ServiceEnv, SigningHSM, build_service, policy_text
from tests.unit.signing.env import signing_hsm as make_hsm

__all__ = ["oidc_issuer"]
pytestmark = pytest.mark.skipif(not softhsm.available(), reason="SoftHSM2/OpenSC not installed")

DIGEST = Digest.of(b"an image manifest")


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningHSM]:
    with make_hsm(tmp_path_factory.mktemp("hsm")) as env:
        yield env


@pytest.fixture(scope="module")
def env(
    hsm: SigningHSM, oidc_issuer: ServedIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceEnv]:
    built = build_service(tmp_path_factory.mktemp("data"), policy_text(hsm, oidc_issuer.url))
    try:
        yield built
    finally:
        built.close()


def body(repository: str = f"{REGISTRY}/team-a/app", **extra: Any) -> bytes:
    doc = {"digest": str(DIGEST), "repository": repository, "kind": "signature", **extra}
    return json.dumps(doc).encode()


async def sign(env: ServiceEnv, token: str | None, data: bytes) -> SignResult:
    return await env.service.sign(token, data, client="127.0.0.1")


async def refused(env: ServiceEnv, token: str | None, data: bytes) -> SafeguardError:
    with pytest.raises(SafeguardError) as info:
        await sign(env, token, data)
    return info.value


def last_event(env: ServiceEnv) -> dict[str, Any]:
    return env.audit.events(limit=1)[0]


async def test_github_token_signs_with_the_identity_hsm_key(
    env: ServiceEnv, oidc_issuer: ServedIssuer, hsm: SigningHSM
) -> None:
    result = await sign(env, oidc_issuer.github_token(), body())
    material = result.material
    assert result.identity == "team-a-release"
    # The key is the HSM key the policy names for the identity.
    from safeguard.keys.pkcs11 import PKCS11Signer

    with PKCS11Signer(hsm.key_ref("team-a")) as direct:
        assert material.key_id == direct.key_id
    key = load_public_key(material.public_key_pem)

    # The DSSE envelope: cosign v3's statement, about the digest, carrying the verified claims.
    envelope = material.bundle.dsse_envelope
    assert envelope is not None and envelope.payload_type == PAYLOAD_TYPE
    verify_signature(key, envelope.signatures[0].sig, envelope.pae())
    statement = json.loads(envelope.payload)
    assert statement["_type"] == STATEMENT_V1
    assert statement["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    subject = statement["subject"][0]
    assert subject["digest"] == {"sha256": DIGEST.hex}
    notes = subject["annotations"]
    assert notes["safeguard.dev/identity"] == "team-a-release"
    assert notes["safeguard.dev/build-signer-uri"] == (
        "https://github.com/org/team-a/.github/workflows/release.yml@refs/heads/main"
    )
    assert notes["safeguard.dev/source-repository-uri"] == "https://github.com/org/team-a"
    assert notes["safeguard.dev/source-repository-ref"] == "refs/heads/main"
    assert "safeguard.dev/run-invocation-uri" in notes

    # Logged: the bundle's entry is the log's, with an inclusion proof to a signed checkpoint.
    (entry,) = material.bundle.verification_material.tlog_entries
    stored = env.tlog.entry_by_index(entry.log_index)
    assert stored.body == entry.canonicalized_body
    proof = entry.inclusion_proof
    assert proof is not None and proof.checkpoint
    merkle.verify_inclusion(
        merkle.leaf_hash(stored.body), proof.log_index, proof.tree_size, list(proof.hashes),
        proof.root_hash,
    )  # fmt: skip
    assert parse_entry(entry.canonicalized_body).kind == "dsse"

    # The legacy simple-signing payload: same claims, its own hashedrekord entry.
    assert material.legacy_payload is not None and material.legacy_signature is not None
    verify_signature(key, material.legacy_signature, material.legacy_payload)
    payload = parse_payload(material.legacy_payload)
    assert payload.annotations["safeguard.dev/identity"] == "team-a-release"
    assert material.legacy_bundle is not None
    assert env.tlog.entry_by_index(material.legacy_bundle.log_index).body == (
        material.legacy_bundle.body
    )
    assert len(set(material.log_indexes)) == 2

    # The audit event links identity, claims subset and log indexes.
    event = last_event(env)
    assert event["id"] == result.audit_id
    assert event["decision"] == "allowed" and event["code"] == "SIGNED"
    assert event["identity"] == "team-a-release" and event["digest"] == str(DIGEST)
    assert event["logIndexes"] == material.log_indexes
    assert event["claims"]["repository"] == "org/team-a"
    assert event["claims"]["job_workflow_ref"].endswith("release.yml@refs/heads/main")
    assert event["keyId"] == material.key_id
    as_json = result.to_dict()
    assert as_json["auditId"] == result.audit_id and as_json["legacy"]["tag"].endswith(".sig")


async def test_gitlab_token_signs(env: ServiceEnv, oidc_issuer: ServedIssuer) -> None:
    result = await sign(env, oidc_issuer.gitlab_token(), body(f"{REGISTRY}/gitlab/app"))
    assert result.identity == "gitlab-release"
    notes = json.loads(result.material.bundle.dsse_envelope.payload)["subject"][0]  # type: ignore[union-attr]
    annotations = notes["annotations"]
    host = oidc_issuer.host
    assert annotations["safeguard.dev/build-signer-uri"] == (
        f"https://{host}/my-group/my-project//.gitlab-ci.yml@refs/heads/main"
    )
    run = annotations["safeguard.dev/run-invocation-uri"]
    assert run.endswith("/my-group/my-project/-/jobs/302")


async def test_without_legacy_only_the_bundle_is_made(
    env: ServiceEnv, oidc_issuer: ServedIssuer
) -> None:
    result = await sign(env, oidc_issuer.github_token(), body(legacy=False))
    assert result.material.legacy_payload is None and len(result.material.log_indexes) == 1


async def test_attestation_without_statement_gets_provenance_from_verified_claims(
    env: ServiceEnv, oidc_issuer: ServedIssuer
) -> None:
    data = json.dumps(
        {"digest": str(DIGEST), "repository": f"{REGISTRY}/team-a/app", "kind": "attestation"}
    ).encode()
    result = await sign(env, oidc_issuer.github_token(), data)
    material = result.material
    assert material.predicate_type == "https://slsa.dev/provenance/v1"
    statement = json.loads(material.bundle.dsse_envelope.payload)  # type: ignore[union-attr]
    assert statement["subject"] == [
        {"name": f"{REGISTRY}/team-a/app", "digest": {"sha256": DIGEST.hex}}
    ]
    predicate = statement["predicate"]
    assert predicate["runDetails"]["builder"]["id"] == (
        "https://github.com/org/team-a/.github/workflows/release.yml@refs/heads/main"
    )
    dep = predicate["buildDefinition"]["resolvedDependencies"][0]
    assert dep["uri"] == "git+https://github.com/org/team-a@refs/heads/main"
    # The legacy .att layer is the same envelope with the entry's SET.
    layer = material.legacy_layer()
    assert layer is not None and layer.is_attestation
    assert layer.predicate_type == "https://slsa.dev/provenance/v1"
    assert last_event(env)["action"] == "attest"


async def test_attestation_with_a_given_statement(
    env: ServiceEnv, oidc_issuer: ServedIssuer
) -> None:
    statement = {
        "_type": STATEMENT_V1,
        "subject": [{"name": "app", "digest": {"sha256": DIGEST.hex}}],
        "predicateType": "https://example.com/test-result/v1",
        "predicate": {"passed": True},
    }
    data = body(kind="attestation", statement=statement)
    result = await sign(env, oidc_issuer.github_token(), data)
    envelope = result.material.bundle.dsse_envelope
    assert envelope is not None and json.loads(envelope.payload) == statement
    key = load_public_key(result.material.public_key_pem)
    verify_signature(key, envelope.signatures[0].sig, envelope.pae())

    other = dict(statement, subject=[{"name": "x", "digest": {"sha256": "ab" * 32}}])
    problem = await refused(env, oidc_issuer.github_token(), body(kind="attestation",
                                                                   statement=other))  # fmt: skip
    assert isinstance(problem, SigningRequestInvalid) and "not about" in problem.message


# --- refusals, each with its reason ----------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "code", "status", "words"),
    [
        ({"ref": "refs/heads/dev"}, "OIDC_IDENTITY_NOT_MATCHED", 403, "ref is 'refs/heads/dev'"),
        ({"repository": "org/other"}, "OIDC_IDENTITY_NOT_MATCHED", 403, "repository is"),
        (
            {"workflow": ".github/workflows/ci.yml"},
            "OIDC_IDENTITY_NOT_MATCHED",
            403,
            "workflow is '.github/workflows/ci.yml'",
        ),
        ({"issued_at": time.time() - 7200}, "OIDC_TOKEN_EXPIRED", 401, "expired"),
        ({"audience": "someone-else"}, "OIDC_AUDIENCE_MISMATCH", 401, "someone-else"),
    ],
    ids=["wrong-branch", "wrong-repository", "wrong-workflow", "expired", "wrong-audience"],
)
async def test_token_refusals_say_why(
    env: ServiceEnv,
    oidc_issuer: ServedIssuer,
    claims: dict[str, Any],
    code: str,
    status: int,
    words: str,
) -> None:
    problem = await refused(env, oidc_issuer.github_token(**claims), body())
    assert problem.code == code and http_status(problem) == status
    assert words in problem.message, problem.message
    event = last_event(env)
    assert event["decision"] == "refused" and event["code"] == code
    assert event["status"] == status and words in event["reason"]
    assert event["digest"] == str(DIGEST) and event["logIndexes"] == []


async def test_unknown_key_alg_none_and_hmac_confusion_are_refused(
    env: ServiceEnv, oidc_issuer: ServedIssuer
) -> None:
    claims = oidc_issuer.github_claims()
    unknown = await refused(env, oidc_issuer.unknown_kid_token(claims), body())
    assert unknown.code == "OIDC_KEY_UNKNOWN" and http_status(unknown) == 401
    none = await refused(env, oidc_issuer.alg_none_token(claims), body())
    assert none.code == "OIDC_ALGORITHM_REFUSED" and "none" in none.message
    confusion = await refused(env, oidc_issuer.hmac_confusion_token(claims), body())
    assert confusion.code == "OIDC_ALGORITHM_REFUSED"
    event = last_event(env)
    assert event["code"] == "OIDC_ALGORITHM_REFUSED"
    # The unverified claims are kept as a forensic hint, marked as such.
    assert event["claims"]["verified"] is False and event["claims"]["repository"] == "org/team-a"


async def test_team_a_publishing_into_team_b_namespace_is_refused(
    env: ServiceEnv, oidc_issuer: ServedIssuer
) -> None:
    problem = await refused(env, oidc_issuer.github_token(), body(f"{REGISTRY}/team-b/app"))
    assert isinstance(problem, SigningNotAuthorized) and http_status(problem) == 403
    assert "team-a-release" in problem.message
    assert f"{REGISTRY}/team-a/**" in problem.message
    assert "namespace of team-b-release" in problem.message
    event = last_event(env)
    assert event["identity"] == "team-a-release" and event["code"] == "SIGNING_NOT_AUTHORIZED"
    assert event["claims"]["repository"] == "org/team-a"


async def test_missing_token_and_malformed_requests(
    env: ServiceEnv, oidc_issuer: ServedIssuer
) -> None:
    missing = await refused(env, None, body())
    assert isinstance(missing, SigningTokenMissing) and http_status(missing) == 401
    malformed = await refused(env, "not-a-jwt", body())
    assert malformed.code == "OIDC_TOKEN_MALFORMED" and http_status(malformed) == 401
    token = oidc_issuer.github_token()
    for data, words in [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (body(digest="sha256:zz"), "digest"),
        (body(repository="registry.internal/team-a/app:v1"), "without a tag"),
        (body(kind="blob"), "kind"),
        (body(extra=1), "unknown request field"),
        (body(annotations={"safeguard.dev/identity": "x"}), "reserves"),
        (body(statement={"_type": STATEMENT_V1}), "no statement"),
        (body(legacy="yes"), "legacy"),
    ]:
        problem = await refused(env, token, data)
        assert problem.code in ("SIGNING_REQUEST_INVALID", "DIGEST_INVALID"), problem
        assert http_status(problem) == 400
        assert words in problem.message, (words, problem.message)


async def test_rate_limit_refuses_with_retry_after(
    env: ServiceEnv, oidc_issuer: ServedIssuer
) -> None:
    token = oidc_issuer.github_token(repository="org/limited", workflow=".github/workflows/x.yml")
    data = body(f"{REGISTRY}/limited/app", legacy=False)
    for _ in range(3):
        await sign(env, token, data)
    problem = await refused(env, token, data)
    assert isinstance(problem, RateLimited) and http_status(problem) == 429
    assert 1 <= problem.retry_after <= 20
    assert "3 signatures per minute" in problem.message
    assert last_event(env)["code"] == "SIGNING_RATE_LIMITED"
    # Other identities are not affected.
    await sign(env, oidc_issuer.github_token(), body(legacy=False))


async def test_retired_key_in_custody_signs_no_more(
    hsm: SigningHSM, oidc_issuer: ServedIssuer, tmp_path: Path
) -> None:
    built = build_service(tmp_path / "data", policy_text(hsm, oidc_issuer.url))
    try:
        result = await built.service.sign(oidc_issuer.github_token(), body(), client="t")
        pem = result.material.public_key_pem
        from datetime import UTC, datetime, timedelta

        built.custody.register("team-a", pem, actor="ops", ref=hsm.key_ref("team-a"))
        built.custody.retire(
            "team-a", at=datetime.now(UTC) - timedelta(seconds=1), actor="ops", reason="rotation"
        )
        with pytest.raises(SigningKeyRetired) as info:
            await built.service.sign(oidc_issuer.github_token(), body(), client="t")
        assert "retired in custody" in info.value.message
        assert built.audit.events(limit=1)[0]["code"] == "SIGNING_KEY_RETIRED"
    finally:
        built.close()


async def test_policy_retired_key_signs_no_more(
    hsm: SigningHSM, oidc_issuer: ServedIssuer, tmp_path: Path
) -> None:
    text = policy_text(hsm, oidc_issuer.url).replace(
        "      - name: team-b\n",
        "      - name: team-b\n        retiredAt: 2020-01-01T00:00:00Z\n",
    )
    built = build_service(tmp_path / "data", text)
    try:
        with pytest.raises(SigningKeyRetired) as info:
            await built.service.sign(
                oidc_issuer.github_token(repository="org/team-b"),
                body(f"{REGISTRY}/team-b/app"),
                client="t",
            )
        assert "retired at 2020-01-01" in info.value.message
    finally:
        built.close()


def test_audit_claims_never_hold_the_token(env: ServiceEnv) -> None:
    for event in env.audit.events():
        text = json.dumps(event)
        assert "eyJ" not in text  # no JWT segment ever reaches the audit trail


async def test_an_hsm_that_does_not_open_is_503_and_retried(
    hsm: SigningHSM, oidc_issuer: ServedIssuer, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("0000")
    broken = (
        f"pkcs11:token=jdoe-token;object=release?module-path={softhsm.MODULE}"
        f"&pin-source=file:{wrong}"
    )
    text = policy_text(hsm, oidc_issuer.url).replace(hsm.key_ref("team-b"), broken)
    built = build_service(tmp_path / "data", text)
    token = oidc_issuer.github_token(repository="org/team-b")
    try:
        with pytest.raises(SafeguardError) as info:
            await built.service.sign(token, body(f"{REGISTRY}/team-b/app"), client="t")
        assert info.value.code == "SIGNING_KEY_UNAVAILABLE" and http_status(info.value) == 503
        assert "PKCS11_PIN_INVALID" in info.value.message and "0000" not in info.value.message
        assert built.audit.events(limit=1)[0]["status"] == 503
        # Nothing was cached: once the PIN file is right, the next request signs.
        from tests.unit.signing.env import RELEASE_PIN

        wrong.write_text(RELEASE_PIN)
        result = await built.service.sign(token, body(f"{REGISTRY}/team-b/app"), client="t")
        assert result.identity == "team-b-release"
    finally:
        built.close()
