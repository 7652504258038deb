"""mayPublish authorisation with named owners, and the policy-to-requirement mapping."""

from __future__ import annotations

import pytest

from safeguard.identity import Platform
from safeguard.policy import Policy, load_policy_text
from safeguard.signing.authorize import authorize
from safeguard.signing.errors import SigningConfigInvalid, SigningNotAuthorized
from safeguard.signing.policyview import SigningPolicy, requirement_for

POLICY = """apiVersion: safeguard.dev/v1
kind: Policy
trustRoots:
  internal:
    keys:
      - name: a
        ref: "pkcs11:token=t;object=a?module-path=/usr/lib/softhsm/libsofthsm2.so"
      - name: pub
        publicKey: a.pub
identities:
  - name: team-a
    trustRoot: internal
    key: a
    oidc:
      issuer: https://token.actions.githubusercontent.com
      repository: org/team-a
      ref: refs/tags/v*
      refType: tag
      workflow: .github/workflows/release.yml
      environment: prod
      audience: signing
    mayPublish: ["registry.internal/team-a/**"]
  - name: team-b
    trustRoot: internal
    key: a
    oidc:
      issuer: https://gitlab.example
      projectPath: org/team-b/app
      ref: refs/heads/main
      pipelineSource: push
      ciConfigRefUri: gitlab.example/org/team-b/app//.gitlab-ci.yml@refs/heads/main
      jwks: https://gitlab.example/oauth/discovery/keys
    mayPublish: ["registry.internal/team-b/*", "docker.io/org/*"]
  - name: nowhere
    trustRoot: internal
    key: a
    oidc:
      issuer: https://token.actions.githubusercontent.com
      repository: org/nowhere
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    from safeguard.policy.files import FileProblem

    class Files:
        def read(self, path: str) -> bytes:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec

            if path != "a.pub":
                raise FileProblem(path)
            return (
                ec.generate_private_key(ec.SECP256R1())
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )

    return load_policy_text(POLICY, files=Files()).policy


def test_github_identity_maps_every_field(policy: Policy) -> None:
    req = requirement_for(policy.identities[0])
    assert req.platform is Platform.GITHUB and req.audience == "signing"
    assert (req.repository, req.ref, req.ref_type, req.workflow, req.environment) == (
        "org/team-a", "refs/tags/v*", "tag", ".github/workflows/release.yml", "prod",
    )  # fmt: skip


def test_gitlab_identity_on_a_self_hosted_issuer(policy: Policy) -> None:
    req = requirement_for(policy.identities[1])
    assert req.platform is Platform.GITLAB  # from projectPath, not from the issuer
    assert req.project_path == "org/team-b/app" and req.pipeline_source == "push"
    assert req.jwks == "https://gitlab.example/oauth/discovery/keys"
    assert req.audience == "safeguard"  # the policy default


def test_signing_policy_builds_one_verifier(policy: Policy) -> None:
    prepared = SigningPolicy("v1", policy)
    assert sorted(prepared.verifier.issuers) == [
        "https://gitlab.example",
        "https://token.actions.githubusercontent.com",
    ]
    assert prepared.signing_key(prepared.identity("team-a")).name == "a"
    with pytest.raises(SigningConfigInvalid):
        prepared.identity("ghost")


@pytest.mark.parametrize(
    "repository",
    ["registry.internal/team-a/app", "registry.internal/team-a/x/y", "registry.internal/team-a"],
)
def test_may_publish_allows(policy: Policy, repository: str) -> None:
    authorize(policy, policy.identities[0], repository)


def test_docker_hub_names_are_normalised(policy: Policy) -> None:
    authorize(policy, policy.identities[1], "docker.io/org/app")
    with pytest.raises(SigningNotAuthorized):
        authorize(policy, policy.identities[1], "registry.internal/team-b/x/y")


def test_refusal_names_the_owner(policy: Policy) -> None:
    with pytest.raises(SigningNotAuthorized) as info:
        authorize(policy, policy.identities[0], "registry.internal/team-b/app")
    assert "namespace of team-b" in info.value.message
    assert info.value.detail["owners"] == ["team-b"]
    with pytest.raises(SigningNotAuthorized) as other:
        authorize(policy, policy.identities[0], "registry.internal/team-a-evil/app")
    assert "namespace of" not in other.value.message


def test_no_may_publish_means_nowhere(policy: Policy) -> None:
    with pytest.raises(SigningNotAuthorized) as info:
        authorize(policy, policy.identities[2], "registry.internal/team-a/app")
    assert "has no mayPublish globs" in info.value.message
