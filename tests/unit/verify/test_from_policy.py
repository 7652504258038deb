"""From the policy's signers to ``TrustPolicy`` values (``safeguard.verify.from_policy``).

``covers``: a ``mayPublish``/``acceptedIn`` glob that names a registry host applies to a gateway's
repository paths only when that host is one the gateway's registry goes by; globs without a host
apply as written; full names (admission, audit) are matched as written.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from safeguard.keys.base import PublicKey, public_key_der
from safeguard.keys.software import SoftwareSigner
from safeguard.policy import load_policy_text
from safeguard.policy.schema import SignerRef
from safeguard.verify.from_policy import SignerUnavailable, covers, trust_for_signers
from safeguard.verify.verdict import Verdict

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
    assert not trust_for_signers(policy, signers, read, "org/app", registry_hosts=OURS)
    both = [SignerRef(identity="elsewhere"), SignerRef(identity="here")]
    (trust,) = trust_for_signers(policy, both, read, "org/app", registry_hosts=OURS).policies
    assert len(trust.keys) == 1
    # admission and audit see full names: matched as written
    assert trust_for_signers(policy, signers, read, "ghcr.io/org/app")
    assert not trust_for_signers(policy, signers, read, "registry.internal/org/app")


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
    (trust,) = trust_for_signers(policy, signers, stored).policies
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

    signers = [SignerRef(identity="team-a")]
    (trust,) = trust_for_signers(policy, signers, no_files, token_key=token).policies
    assert trust.key_ids == (signer.key_id,)
    assert opened == ["pkcs11:token=t;object=a?module-path=/x.so"]


def test_the_same_key_twice_is_one_key(tmp_path: Path) -> None:
    signer = SoftwareSigner.generate()
    policy = load_policy_text(KEY_FILE_POLICY, base_dir=tmp_path).policy
    signers = [SignerRef(key="a.pub"), SignerRef(key="b.pub")]
    (trust,) = trust_for_signers(policy, signers, lambda _: signer.public_key_pem).policies
    assert trust.key_ids == (signer.key_id,)


# -- the trust root's log, and the keys' lifecycle times -------------------------------------------

LOGGED_POLICY = """apiVersion: safeguard.dev/v1
kind: Policy
trustRoots:
  internal:
    keys:
      - {name: a, ref: keys/a.key, publicKey: a.pub, retiredAt: "2026-06-30T00:00:00Z"}
      - name: b
        ref: keys/b.key
        publicKey: b.pub
        revokedAt: "2026-01-01T00:00:00Z"
        revocationReason: leaked
    tlog: {url: "https://log.internal", publicKey: tlog.pub}
  bare:
    keys:
      - {name: c, ref: keys/c.key, publicKey: c.pub}
      - {name: c-again, publicKey: a.pub, revokedAt: "2026-03-01T00:00:00Z", revocationReason: x}
identities:
  - name: team-a
    trustRoot: internal
    key: a
    oidc: {issuer: https://token.example.test, repository: org/a}
    mayPublish: ["team-a/**"]
  - name: team-b
    trustRoot: internal
    key: b
    oidc: {issuer: https://token.example.test, repository: org/b}
    mayPublish: ["team-a/**"]
  - name: team-c
    trustRoot: bare
    key: c
    oidc: {issuer: https://token.example.test, repository: org/c}
    mayPublish: ["team-a/**"]
"""


def _logged_files(tmp_path: Path, log_key: SoftwareSigner) -> tuple[dict[str, bytes], list[str]]:
    signers = {name: SoftwareSigner.generate() for name in "abc"}
    files = {f"{name}.pub": s.public_key_pem for name, s in signers.items()}
    files["tlog.pub"] = log_key.public_key_pem
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return files, [signers[n].key_id for n in "abc"]


def test_a_trust_root_log_is_required_and_named_in_the_trusted_root(tmp_path: Path) -> None:
    log_key = SoftwareSigner.generate()
    files, (a, b, c) = _logged_files(tmp_path, log_key)
    policy = load_policy_text(LOGGED_POLICY, base_dir=tmp_path).policy
    trust = trust_for_signers(policy, [], files.__getitem__, "team-a/app", registry_hosts=OURS)
    unlogged, logged = trust.policies  # one pass per log; keys without a log first
    assert unlogged.key_ids == (c,) and unlogged.trust is None and not unlogged.require_tlog
    assert set(logged.key_ids) == {a, b}  # a revoked key is no longer left out: judged by time
    assert logged.trust is not None and logged.require_tlog
    (log,) = logged.trust.tlogs
    assert log.base_url == "https://log.internal" and log.note_name == "log.internal"
    assert log.log_id == hashlib.sha256(public_key_der(log_key.public_key)).digest()
    assert log.valid.contains(datetime(2001, 1, 1, tzinfo=UTC))
    # lifecycle times by key id, from every entry naming the same key material
    times = trust.key_times
    assert [t.name for t in times.times_for(a)] == ["internal/a", "bare/c-again"]
    assert [t.reason for t in times.times_for(b)] == ["leaked"]
    assert times.times_for(c) == ()
    logged_at = datetime(2026, 2, 1, tzinfo=UTC)
    assert times.key_status_at(a, logged_at) == "flag_for_review"  # revoked later as c-again
    assert times.key_status_at(a, datetime(2026, 4, 1, tzinfo=UTC)) == "revoked"
    assert times.key_status_at(b, logged_at) == "revoked"
    assert times.key_status_at(b, datetime(2025, 12, 1, tzinfo=UTC)) == "flag_for_review"


def test_an_unusable_log_key_is_signer_unavailable(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = SoftwareSigner(ec.generate_private_key(ec.SECP384R1()))
    files, _ = _logged_files(tmp_path, p384)
    policy = load_policy_text(LOGGED_POLICY, base_dir=tmp_path).policy
    with pytest.raises(SignerUnavailable) as info:
        trust_for_signers(policy, [SignerRef(identity="team-a")], files.__getitem__)
    assert "tlog" in info.value.message and "P-256 or Ed25519" in info.value.message
    missing = {k: v for k, v in files.items() if k != "tlog.pub"}
    with pytest.raises(SignerUnavailable) as info:
        trust_for_signers(policy, [SignerRef(identity="team-a")], missing.__getitem__)
    assert "tlog.pub cannot be read" in info.value.message


def test_judge_applies_the_policy_times_at_the_log_time(tmp_path: Path) -> None:
    files, (a, _, _) = _logged_files(tmp_path, SoftwareSigner.generate())
    policy = load_policy_text(LOGGED_POLICY, base_dir=tmp_path).policy
    trust = trust_for_signers(policy, [SignerRef(identity="team-a")], files.__getitem__)

    def logged(at: datetime) -> Verdict:
        entry = {"verified": True, "signedEntryTimestamp": True, "integratedTime": at.isoformat()}
        evidence = {"verified": True, "signer": {"keyId": a}, "tlog": [entry]}
        return Verdict(True, ["accepted"], [evidence])

    early = trust.judge(logged(datetime(2026, 2, 1, tzinfo=UTC)))
    assert early.allowed and early.evidence[0]["flags"] == ["KEY_REVOKED_REVIEW"]
    late = trust.judge(logged(datetime(2026, 3, 1, tzinfo=UTC)))
    assert not late.allowed and late.evidence[0]["code"] == "KEY_REVOKED"
    refused = Verdict(False, ["refused"], [])
    assert trust.judge(refused) is refused
