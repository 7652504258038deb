"""``verify-attestation`` with slsa-verifier's flags against real registries: an image attested
with sigstore-python's real SLSA v1 provenance meets ``--builder-id``/``--source-uri``/
``--source-tag`` and is refused (exit 1, ``PREDICATE_REQUIREMENT_UNMET``) for another source or
branch; the requirement is in the verdict's evidence. The built-in registry finds the attestation
as a referrer, docker-registry 2.8 through the tag schema."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core.digest import Digest
from safeguard.keys.cosign_keys import generate_key_pair
from safeguard.oci.client import RegistryClient
from tests.fixtures.distribution import RegistryServer
from tests.unit.oci.artifacts import image, push

runner = CliRunner()
PASSWORD = "requirements pw"
SLSA = Path(__file__).parents[1] / "fixtures" / "vectors" / "sigstore-python"
BUILDER = "https://github.com/octo-org/octo-repo/.github/workflows/docker.yaml"


def run(*args: str) -> Any:
    result = runner.invoke(app, list(args), env={"COSIGN_PASSWORD": PASSWORD})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    return result


async def _push_image(host: str, repo: str) -> Digest:
    art = image()
    async with RegistryClient(host) as client:
        await push(client, repo, art, "v1")
    return art.digest


def test_verify_attestation_with_provenance_requirements(
    any_registry: RegistryServer, tmp_path: Path
) -> None:
    key, pub = generate_key_pair(tmp_path / "cosign", PASSWORD)
    repo = f"prov/{uuid.uuid4().hex[:10]}"
    digest = asyncio.run(_push_image(any_registry.host, repo))
    ref = f"{any_registry.host}/{repo}@{digest}"
    made = run(
        "attest",
        "--key",
        str(key),
        "--predicate",
        str(SLSA / "slsa_predicate_v1_0.json"),
        "--type",
        "slsaprovenance1",
        ref,
    )
    assert made.exit_code == 0, made.stderr
    base = ["verify-attestation", "--key", str(pub), "--type", "slsaprovenance1"]
    ok = run(
        *base,
        "--builder-id",
        BUILDER,
        "--source-uri",
        "github.com/octo-org/octo-repo",
        "--source-tag",
        "1.21.0",
        ref,
    )
    assert ok.exit_code == 0, ok.stderr
    assert "The predicate states" in ok.stderr and "sourceUri" in ok.stderr
    statement = json.loads(ok.stdout.splitlines()[0])
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    as_json = run(*base, "--source-uri", "github.com/octo-org/octo-repo", ref, "-o", "json")
    verdict = json.loads(as_json.stdout)
    assert verdict["allowed"]
    assert verdict["evidence"][0]["detail"]["predicateRequirement"]["sourceUri"] == (
        "https://github.com/octo-org/octo-repo"
    )
    for flags, why in (
        (["--source-uri", "github.com/mallory/octo-repo"], "the source is"),
        (["--source-branch", "main"], "the source ref is"),
    ):
        refused = run(*base, *flags, ref, "-o", "json")
        assert refused.exit_code == 1, refused.stderr
        evidence = json.loads(refused.stdout)["evidence"]
        assert {e["code"] for e in evidence} == {"PREDICATE_REQUIREMENT_UNMET"}
        assert why in evidence[0]["reason"]
    usage = run(*base, "--source-tag", "1.21.0", "--source-branch", "main", ref)
    assert usage.exit_code == 2
