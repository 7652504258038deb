"""``verify-blob-attestation`` with slsa-verifier's flags (``--builder-id``, ``--source-uri``,
``--source-tag``, ``--source-branch``) on an attestation of sigstore-python's real SLSA v1
provenance: met, unmet (exit 1, ``PREDICATE_REQUIREMENT_UNMET``), and unusable flags (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.keys.cosign_keys import generate_key_pair

runner = CliRunner()
PASSWORD = "predicate pw"
SLSA = Path(__file__).parents[2] / "fixtures" / "vectors" / "sigstore-python"
SLSA_FILE = SLSA / "slsa_predicate_v1_0.json"
BUILDER = "https://github.com/octo-org/octo-repo/.github/workflows/docker.yaml"


def run(*args: str) -> Any:
    result = runner.invoke(app, list(args), env={"COSIGN_PASSWORD": PASSWORD})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def attested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("attested")
    key, pub = generate_key_pair(base / "cosign", PASSWORD)
    artifact = base / "app.tar.gz"
    artifact.write_bytes(b"release " * 64)
    bundle = base / "att.sigstore.json"
    made = run(
        "attest-blob",
        "--key",
        str(key),
        "--type",
        "slsaprovenance1",
        "--predicate",
        str(SLSA_FILE),
        "--bundle",
        str(bundle),
        str(artifact),
    )
    assert made.exit_code == 0, made.stderr
    return pub, bundle, artifact


def verify(attested: tuple[Path, Path, Path], *flags: str) -> Any:
    pub, bundle, artifact = attested
    return run(
        "verify-blob-attestation", "--key", str(pub), "--bundle", str(bundle), *flags, str(artifact)
    )


@pytest.mark.parametrize(
    "flags",
    [
        ["--builder-id", BUILDER, "--source-uri", "github.com/octo-org/octo-repo"],
        ["--type", "slsaprovenance1", "--source-tag", "1.21.0"],
        ["--builder-id", f"{BUILDER}@refs/heads/development"],
    ],
)
def test_met(attested: tuple[Path, Path, Path], flags: list[str]) -> None:
    result = verify(attested, *flags)
    assert result.exit_code == 0, result.stderr
    assert "Verified OK" in result.stderr


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (["--source-uri", "github.com/mallory/octo-repo"], "the source is"),
        (["--source-branch", "main"], "the source ref is"),
        (["--builder-id", "https://github.com/actions/runner/github-hosted"], "the builder is"),
        (["--builder-id", f"{BUILDER}@refs/heads/main"], "the builder is"),
    ],
)
def test_unmet(attested: tuple[Path, Path, Path], flags: list[str], why: str) -> None:
    result = verify(attested, *flags, "-o", "json")
    assert result.exit_code == 1, result.stderr
    verdict = json.loads(result.stdout)
    assert not verdict["allowed"]
    assert verdict["evidence"][0]["code"] == "PREDICATE_REQUIREMENT_UNMET"
    assert why in verdict["evidence"][0]["reason"]
    plain = verify(attested, *flags)
    assert plain.exit_code == 1 and "PREDICATE_REQUIREMENT_UNMET" in plain.stderr


@pytest.mark.parametrize(
    "flags",
    [
        ["--source-tag", "1.21.0", "--source-branch", "main"],
        ["--type", "cyclonedx", "--builder-id", BUILDER],
        ["--source-uri", "not a uri"],
        ["--source-tag", "refs/tags/1.21.0"],
    ],
)
def test_unusable_flags_are_usage_errors(
    attested: tuple[Path, Path, Path], flags: list[str]
) -> None:
    result = verify(attested, *flags)
    assert result.exit_code == 2, result.stderr
    assert "PREDICATE_REQUIREMENT_INVALID" in result.stderr or "POLICY_GLOB" in result.stderr
