"""From the policy's signers to ``TrustPolicy`` values (``safeguard.verify.from_policy``).

``covers``: a ``mayPublish``/``acceptedIn`` glob that names a registry host applies to a gateway's
repository paths only when that host is one the gateway's registry goes by; globs without a host
apply as written; full names (admission, audit) are matched as written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safeguard.keys.base import PublicKey
from safeguard.keys.software import SoftwareSigner
from safeguard.policy import load_policy_text
from safeguard.policy.schema import SignerRef
from safeguard.verify.from_policy import SignerUnavailable, covers, trust_for_signers

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


# -- files come through read(), never from the file system ---------------------------------------

KEY_FILE_POLICY = """apiVersion: safeguard.dev/v1
kind: Policy
trustRoots:
  internal:
    keys:
      - {name: a, ref: keys/cosign.key}
identities:
  - name: team-a
    trustRoot: internal
    key: a
    oidc: {issuer: https://token.example.test, repository: org/a}
    mayPublish: ["registry.internal/team-a/**"]
"""


def test_the_public_half_of_a_key_file_is_read_through_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = SoftwareSigner.generate()
    policy = load_policy_text(KEY_FILE_POLICY, base_dir=tmp_path).policy
    signers = [SignerRef(identity="team-a")]
    asked: list[str] = []

    def stored(path: str) -> bytes:
        asked.append(path)
        return {"keys/cosign.pub": signer.public_key_pem}[path]

    # nothing on disk: the reader (a stored policy version's files) is all there is
    monkeypatch.chdir(tmp_path)
    (trust,) = trust_for_signers(policy, signers, stored)
    assert trust.key_ids == (signer.key_id,) and asked == ["keys/cosign.pub"]


def test_a_stored_version_never_reads_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_disk = SoftwareSigner.generate()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "cosign.pub").write_bytes(on_disk.public_key_pem)
    monkeypatch.chdir(tmp_path)  # a .pub where the old code looked for it
    policy = load_policy_text(KEY_FILE_POLICY, base_dir=tmp_path).policy

    def stored(path: str) -> bytes:
        raise KeyError(path)  # the version did not store it

    with pytest.raises(SignerUnavailable) as info:
        trust_for_signers(policy, [SignerRef(identity="team-a")], stored)
    assert "keys/cosign.pub" in info.value.message and "publicKey" in (info.value.hint or "")


def test_unreadable_and_malformed_files_are_signer_unavailable(tmp_path: Path) -> None:
    policy = load_policy_text(KEY_FILE_POLICY, base_dir=tmp_path).policy
    signers = [SignerRef(key="other.pub")]

    def garbage(path: str) -> bytes:
        return b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"

    with pytest.raises(SignerUnavailable) as info:
        trust_for_signers(policy, signers, garbage)
    assert "other.pub holds no public key" in info.value.message

    def failing(path: str) -> bytes:
        raise OSError("disk on fire")

    with pytest.raises(SignerUnavailable) as info:
        trust_for_signers(policy, signers, failing)
    assert "disk on fire" in info.value.message


def test_pkcs11_references_go_to_the_token_reader(tmp_path: Path) -> None:
    signer = SoftwareSigner.generate()
    text = KEY_FILE_POLICY.replace(
        "ref: keys/cosign.key", 'ref: "pkcs11:token=t;object=a?module-path=/x.so"'
    )
    policy = load_policy_text(text, base_dir=tmp_path).policy
    opened: list[str] = []

    def token(uri: str) -> PublicKey:
        opened.append(uri)
        return signer.public_key

    def no_files(path: str) -> bytes:
        raise KeyError(path)

    (trust,) = trust_for_signers(policy, [SignerRef(identity="team-a")], no_files, token_key=token)
    assert trust.key_ids == (signer.key_id,)
    assert opened == ["pkcs11:token=t;object=a?module-path=/x.so"]


def test_the_same_key_twice_is_one_key(tmp_path: Path) -> None:
    signer = SoftwareSigner.generate()
    policy = load_policy_text(KEY_FILE_POLICY, base_dir=tmp_path).policy
    signers = [SignerRef(key="a.pub"), SignerRef(key="b.pub")]
    (trust,) = trust_for_signers(policy, signers, lambda _: signer.public_key_pem)
    assert trust.key_ids == (signer.key_id,)
