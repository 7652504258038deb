"""Key custody end to end: keys generated inside SoftHSM2 through PKCS#11, registered, rotated,
retired and revoked with ``safeguard keys``; and what that does to signatures, judged at the
transparency log's integrated time, never the wall clock: sign, sign again a second later, then
retire or revoke at a time *between* the two entries, and verify both through the verification
engine with ``verify.custody_check`` applied.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.formats.bundle import Bundle
from safeguard.keys.base import key_id_for, load_public_key, verify_signature
from safeguard.keys.lifecycle import KeyState, state_at
from safeguard.keys.pkcs11 import PKCS11Signer
from safeguard.policy import load_policy_text
from safeguard.signing.custody import CustodyView
from safeguard.signing.errors import SigningKeyRetired
from safeguard.signing.service import SignResult
from safeguard.tlog.logkey import key_details
from safeguard.tlog.trustroot import trusted_root
from safeguard.verify.checks import Artifact, Expectation
from safeguard.verify.custody_check import FLAG_REVIEW, apply_custody, flagged
from safeguard.verify.engine import verify_bundle
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.trustroot import parse_trusted_root
from safeguard.verify.verdict import Verdict
from tests.fixtures import softhsm
from tests.fixtures.oidc import ServedIssuer, oidc_issuer
from tests.unit.signing.env import REGISTRY, ServiceEnv, SigningHSM, build_service, policy_text
from tests.unit.signing.env import signing_hsm as make_hsm

__all__ = ["oidc_issuer"]
pytestmark = pytest.mark.skipif(not softhsm.available(), reason="SoftHSM2/OpenSC not installed")
runner = CliRunner()


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningHSM]:
    with make_hsm(tmp_path_factory.mktemp("hsm")) as env:
        yield env


@pytest.fixture
def env(hsm: SigningHSM, oidc_issuer: ServedIssuer, tmp_path: Path) -> Iterator[ServiceEnv]:
    built = build_service(tmp_path / "data", policy_text(hsm, oidc_issuer.url))
    try:
        yield built
    finally:
        built.close()


def keys(env: ServiceEnv, *args: str) -> Any:
    actor = ["--actor", "alice"] if args[0] in ("create", "rotate", "retire", "revoke") else []
    result = runner.invoke(app, ["keys", *args, "--data-dir", str(env.data_dir), *actor])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


@dataclass
class Signed:
    result: SignResult

    @property
    def bundle(self) -> Bundle:
        return self.result.material.bundle

    @property
    def log_time(self) -> datetime:
        t = self.result.material.integrated_time
        assert t is not None
        return datetime.fromtimestamp(t, UTC)


async def sign(env: ServiceEnv, token: str, repository: str) -> Signed:
    digest = f"sha256:{(repository + str(time.time_ns())).encode().hex()[:64]:0<64}"
    body = json.dumps(
        {"digest": digest, "repository": repository, "kind": "signature", "legacy": False}
    ).encode()
    return Signed(await env.service.sign(token, body, client="test"))


async def two_seconds_apart(env: ServiceEnv, token: str, repository: str) -> tuple[Signed, Signed]:
    first = await sign(env, token, repository)
    await asyncio.sleep(max(0.0, first.log_time.timestamp() + 1 - time.time()) + 0.02)
    second = await sign(env, token, repository)
    assert second.log_time > first.log_time
    return first, second


def verdict(env: ServiceEnv, signed: Signed) -> Verdict:
    """The verification engine's verdict on one bundle, log entries checked."""
    doc = trusted_root(
        "https://safeguard", env.tlog.key.der, key_details(env.tlog.key.public_key),
        env.tlog.created_at,
    )  # fmt: skip
    material = parse_trusted_root(json.dumps(doc).encode())
    key = load_public_key(signed.result.material.public_key_pem)
    return verify_bundle(
        signed.bundle.to_json(),
        Artifact(signed.result.material.digest, None, signed.result.material.repository),
        TrustPolicy(keys=(key,), trust=material),
        Expectation(),
    )


def test_create_generates_the_key_inside_the_hsm(env: ServiceEnv, hsm: SigningHSM) -> None:
    made = keys(env, "create", "team-c", "--hsm", hsm.token_uri(), "-o", "json")
    assert made.exit_code == 0, made.output
    record = json.loads(made.stdout)
    assert record["origin"] == "generated" and record["state"] == "valid"
    assert record["createdBy"] == "alice" and record["algorithm"] == "PKIX_ECDSA_P256_SHA_256"
    ref = record["ref"]
    assert ref.startswith("pkcs11:token=sgsign;object=team-c;id=%")
    assert "pin-source=file:" in ref and "pin-value" not in ref
    with PKCS11Signer(ref) as signer:  # the private key is in the token and signs
        assert signer.key_id == record["keyId"]
        verify_signature(signer.public_key, signer.sign(b"hello"), b"hello")
    p384 = keys(env, "create", "team-d", "--hsm", hsm.token_uri(), "--curve", "p384", "-o", "json")
    assert json.loads(p384.stdout)["algorithm"] == "PKIX_ECDSA_P384_SHA_384"
    again = keys(env, "create", "team-c", "--hsm", hsm.token_uri())
    assert again.exit_code == 2 and "CUSTODY_KEY_EXISTS" in again.stderr
    clash = keys(env, "create", "team-a", "--hsm", hsm.token_uri())  # label already on the token
    assert clash.exit_code == 2 and "already holds a private key" in clash.stderr
    listed = json.loads(keys(env, "list", "-o", "json").stdout)
    assert [k["name"] for k in listed] == ["team-c", "team-d"]
    history = json.loads(keys(env, "history", "team-c", "-o", "json").stdout)
    assert [(h["action"], h["actor"]) for h in history] == [("create", "alice")]


def test_register_existing_public_key_and_refusals(env: ServiceEnv, tmp_path: Path) -> None:
    pem = tmp_path / "k.pub"
    with PKCS11Signer(f"{env_ref(env)}") as signer:
        pem.write_bytes(signer.public_key_pem)
        key_id = signer.key_id
    made = keys(env, "create", "legacy", "--public-key", str(pem), "-o", "json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["keyId"] == key_id
    assert json.loads(made.stdout)["origin"] == "registered"
    both = keys(env, "create", "x", "--public-key", str(pem), "--hsm", "pkcs11:token=t")
    assert both.exit_code == 2 and "exactly one" in both.stderr
    bad_time = keys(env, "retire", "legacy", "--at", "yesterday")
    assert bad_time.exit_code == 2 and "RFC 3339" in bad_time.stderr
    no_zone = keys(env, "retire", "legacy", "--at", "2026-01-01T00:00:00")
    assert no_zone.exit_code == 2 and "time zone" in no_zone.stderr
    unknown = keys(env, "retire", "ghost")
    assert unknown.exit_code == 2 and "CUSTODY_KEY_NOT_FOUND" in unknown.stderr
    assert keys(env, "retire", "legacy", "--reason", "done").exit_code == 0
    twice = keys(env, "retire", "legacy")
    assert twice.exit_code == 2 and "already retired" in twice.stderr
    no_reason = keys(env, "revoke", "legacy", "--at", "now")
    assert no_reason.exit_code == 2  # --reason is required


def env_ref(env: ServiceEnv) -> str:
    policy = env.store.require_active().policy
    key = policy.trust_roots["internal"].key("team-a")
    assert key is not None and key.ref is not None
    return key.ref


async def test_rotation_judged_at_log_time(
    env: ServiceEnv, oidc_issuer: ServedIssuer, hsm: SigningHSM
) -> None:
    token = oidc_issuer.github_token()
    first, second = await two_seconds_apart(env, token, f"{REGISTRY}/team-a/app")
    key_id = first.result.material.key_id
    with PKCS11Signer(hsm.key_ref("team-a")) as signer:
        env.custody.register(
            "team-a", signer.public_key_pem, actor="ops", ref=hsm.key_ref("team-a")
        )
    # Rotate, retiring team-a at the second signature's log time: after both were made.
    at = second.log_time.isoformat()
    rotated = keys(env, "rotate", "team-a", "--to", "team-a-2", "--at", at, "--reason", "yearly",
                   "-o", "json")  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    info = json.loads(rotated.stdout)
    assert info["retired"]["successor"] == "team-a-2"
    assert info["successor"]["predecessor"] == "team-a"
    assert info["successor"]["ref"].startswith("pkcs11:token=sgsign;object=team-a-2;")

    custody = CustodyView(env.custody)
    assert custody.key_status_at(key_id, first.log_time) is KeyState.VALID
    assert custody.key_status_at(key_id, second.log_time) is KeyState.RETIRED
    # Through the verification engine: both verify cryptographically and in the log; custody
    # keeps the first and refuses the second.
    kept = apply_custody(verdict(env, first), custody)
    assert kept.allowed and kept.evidence[0]["custody"]["state"] == "valid"
    assert kept.evidence[0]["custody"]["timeSource"] == "log"
    before = verdict(env, second)
    assert before.allowed
    after = apply_custody(before, custody)
    assert not after.allowed
    assert after.evidence[0]["code"] == "KEY_RETIRED"
    assert "team-a retired at" in after.evidence[0]["reason"]
    # The service signs no more with the retired key, and names the successor.
    with pytest.raises(SigningKeyRetired) as info_:
        await sign(env, token, f"{REGISTRY}/team-a/app")
    assert "successor is 'team-a-2'" in info_.value.message
    status = keys(env, "status", "team-a", "--at", first.log_time.isoformat(), "-o", "json")
    assert json.loads(status.stdout)["state"] == "valid"
    history = [h["action"] for h in json.loads(keys(env, "history", "-o", "json").stdout)]
    assert history == ["register", "create", "rotate"]


async def test_revocation_refuses_later_and_flags_earlier(
    env: ServiceEnv, oidc_issuer: ServedIssuer, hsm: SigningHSM
) -> None:
    token = oidc_issuer.github_token(repository="org/team-b")
    first, second = await two_seconds_apart(env, token, f"{REGISTRY}/team-b/app")
    with PKCS11Signer(hsm.key_ref("team-b")) as signer:
        env.custody.register("team-b", signer.public_key_pem, actor="ops")
    revoked = keys(env, "revoke", "team-b", "--at", second.log_time.isoformat(), "--reason",
                   "key material leaked")  # fmt: skip
    assert revoked.exit_code == 0, revoked.output
    custody = CustodyView(env.custody)
    flagged_verdict = apply_custody(verdict(env, first), custody)
    assert flagged_verdict.allowed  # still valid, but someone must look at it
    assert flagged_verdict.evidence[0]["flags"] == [FLAG_REVIEW]
    assert flagged(flagged_verdict) and "review it" in flagged_verdict.reasons[-1]
    refused = apply_custody(verdict(env, second), custody)
    assert not refused.allowed and refused.evidence[0]["code"] == "KEY_REVOKED"
    assert "key material leaked" in refused.evidence[0]["reason"]
    # A revocation can move earlier, never later.
    later = keys(env, "revoke", "team-b", "--at", "now", "--reason", "x")
    assert later.exit_code == 2 and "only be moved earlier" in later.stderr
    earlier = (first.log_time - timedelta(seconds=10)).isoformat()
    assert keys(env, "revoke", "team-b", "--at", earlier, "--reason", "earlier").exit_code == 0
    assert apply_custody(verdict(env, first), custody).allowed is False
    retire_revoked = keys(env, "retire", "team-b")
    assert retire_revoked.exit_code == 2 and "revoked" in retire_revoked.stderr


async def test_policy_key_times_and_unlogged_signatures(
    env: ServiceEnv, oidc_issuer: ServedIssuer, hsm: SigningHSM, tmp_path: Path
) -> None:
    signed = await sign(env, oidc_issuer.github_token(), f"{REGISTRY}/team-a/app")
    pub = tmp_path / "team-a.pub"
    pub.write_bytes(signed.result.material.public_key_pem)
    key_id = key_id_for(load_public_key(pub.read_bytes()))
    retired = signed.log_time + timedelta(seconds=1)
    policy_yaml = policy_text(hsm, oidc_issuer.url).replace(
        "      - name: spare\n",
        "      - name: old-team-a\n        publicKey: team-a.pub\n"
        f"        retiredAt: {retired.strftime('%Y-%m-%dT%H:%M:%SZ')}\n      - name: spare\n",
    )
    loaded = load_policy_text(policy_yaml, base_dir=tmp_path)
    view = CustodyView(env.custody, loaded.policy, lambda p: loaded.files[p])
    assert view.key_status_at(key_id, signed.log_time) is KeyState.VALID
    assert view.key_status_at(key_id, retired) is KeyState.RETIRED
    kept = apply_custody(verdict(env, signed), view)
    assert kept.allowed
    # Without log evidence the signature is judged as of now, after the retirement.
    unlogged = Verdict(
        True,
        [],
        [
            {
                "verified": True,
                "signer": {"keyId": key_id},
                "tlog": [],
                "source": "bundle",
                "location": "x",
                "kind": "bundle/dsse",
            }
        ],
    )
    judged = apply_custody(unlogged, view, now=retired + timedelta(days=1))
    assert not judged.allowed and judged.evidence[0]["custody"]["timeSource"] == "now"
    assert "old-team-a retired at" in judged.evidence[0]["reason"]
    # Keyless evidence and refused evidence are left as they were.
    other = Verdict(False, [], [{"verified": False, "signer": {"keyId": key_id}}])
    assert apply_custody(other, view).evidence == other.evidence


def test_state_rules() -> None:
    t = datetime(2026, 6, 30, tzinfo=UTC)
    before, after = t - timedelta(seconds=1), t
    assert state_at(before, t, None) is KeyState.VALID
    assert state_at(after, t, None) is KeyState.RETIRED
    assert state_at(before, None, t) is KeyState.FLAG_FOR_REVIEW
    assert state_at(after, None, t) is KeyState.REVOKED
    assert state_at(after, t - timedelta(days=1), t) is KeyState.REVOKED
    assert state_at(datetime(2026, 6, 29), t, None) is KeyState.VALID  # naive is UTC
