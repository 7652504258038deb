"""From the policy's signers to ``TrustPolicy`` values (``safeguard.verify.from_policy``).

``covers``: a ``mayPublish``/``acceptedIn`` glob that names a registry host applies to a gateway's
repository paths only when that host is one the gateway's registry goes by; globs without a host
apply as written; full names (admission, audit) are matched as written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safeguard.keys.software import SoftwareSigner
from safeguard.policy import load_policy_text
from safeguard.policy.schema import SignerRef
from safeguard.verify.from_policy import covers, trust_for_signers

OURS = frozenset({"registry.internal", "127.0.0.1:5000", "localhost"})


@pytest.mark.parametrize(
    ("globs", "repository"),
    [
        (["ghcr.io/org/**"], "org/app"),  # another registry's path is not ours
        (["evil.example:5000/team-a/**"], "team-a/app"),
        (["ghcr.io/org/**"], "ghcr.io/org/app"),  # a path that merely looks like a host
        (["REGISTRY.internal.evil/team-a/**"], "team-a/app"),
        (["127.0.0.1:5001/team-a/**"], "team-a/app"),  # our host, another port
        (["*.internal/team-a/**"], "team-a/app"),  # no wildcards in hosts
        (["registry.internal/team-b/**"], "team-a/app"),
        (["team-b/**"], "team-a/app"),
        ([], "team-a/app"),
    ],
)
def test_globs_for_other_registries_do_not_cover_gateway_paths(
    globs: list[str], repository: str
) -> None:
    assert not covers(globs, repository, OURS)


@pytest.mark.parametrize(
    ("globs", "repository"),
    [
        (["registry.internal/team-a/**"], "team-a/app"),
        (["Registry.Internal/team-a/**"], "team-a/x/app"),  # hosts compare case-insensitively
        (["127.0.0.1:5000/team-a/*"], "team-a/app"),
        (["localhost/**"], "team-a/app"),
        (["team-a/**"], "team-a/app"),  # no host: as written
        (["ghcr.io/org/**", "team-a/**"], "team-a/app"),
        (["**"], "anything/at/all"),
    ],
)
def test_globs_for_our_registry_cover_gateway_paths(globs: list[str], repository: str) -> None:
    assert covers(globs, repository, OURS)


def test_full_names_are_matched_as_written() -> None:
    assert covers(["registry.internal/team-a/**"], "registry.internal/team-a/app")
    assert not covers(["registry.internal/team-a/**"], "team-a/app")
    assert not covers(["ghcr.io/org/**"], "org/app")
    assert not covers(["ghcr.io/org/**"], "registry.internal/org/app")


POLICY = """apiVersion: safeguard.dev/v1
kind: Policy
trustRoots:
  internal:
    keys:
      - {name: a, ref: keys/a.key, publicKey: a.pub}
identities:
  - name: elsewhere
    trustRoot: internal
    key: a
    oidc: {issuer: https://token.example.test, repository: org/a}
    mayPublish: ["ghcr.io/org/**"]
  - name: here
    trustRoot: internal
    key: a
    oidc: {issuer: https://token.example.test, repository: org/b}
    mayPublish: ["registry.internal/org/**"]
"""


def test_trust_for_signers_leaves_out_identities_of_other_registries(tmp_path: Path) -> None:
    (tmp_path / "a.pub").write_bytes(SoftwareSigner.generate().public_key_pem)
    loaded = load_policy_text(POLICY, base_dir=tmp_path)
    policy, read = loaded.policy, loaded.files.__getitem__
    signers = [SignerRef(identity="elsewhere")]
    assert trust_for_signers(policy, signers, read, "org/app", registry_hosts=OURS) == ()
    both = [SignerRef(identity="elsewhere"), SignerRef(identity="here")]
    (trust,) = trust_for_signers(policy, both, read, "org/app", registry_hosts=OURS)
    assert len(trust.keys) == 1
    # admission and audit see full names: matched as written
    assert trust_for_signers(policy, signers, read, "ghcr.io/org/app") != ()
    assert trust_for_signers(policy, signers, read, "registry.internal/org/app") == ()
