"""``safeguard copy``: JSON and text summaries, referrers by default, exit codes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core import mediatypes as mt
from safeguard.oci.client import RegistryClient
from safeguard.oci.layout import OCILayout
from tests.fixtures.distribution import RegistryServer
from tests.fixtures.ports import free_port
from tests.unit.oci.artifacts import Artifact, image, push, referrer

runner = CliRunner()


def _repo() -> str:
    return f"cli/{uuid.uuid4().hex[:10]}"


def _push(host: str, repo: str, *artifacts: tuple[Artifact, str | None]) -> None:
    async def go() -> None:
        async with RegistryClient(host) as client:
            for art, tag in artifacts:
                await push(client, repo, art, tag)

    asyncio.run(go())


def test_copy_json_summary_with_referrers(any_registry: RegistryServer, tmp_path: Path) -> None:
    repo = _repo()
    art = image()
    sig = referrer(art, mt.SIGSTORE_BUNDLE_V03)
    _push(any_registry.host, repo, (art, "v1"), (sig, None))
    src = f"{any_registry.host}/{repo}:v1"
    result = runner.invoke(app, ["copy", src, f"oci:{tmp_path}/l:v1", "--output", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["source"] == src
    assert summary["destination"] == f"oci:{tmp_path}/l:v1"
    assert summary["digest"] == str(art.digest)
    assert summary["copied"]["manifests"] == 2
    assert summary["copied"]["blobs"] == len({**art.blobs, **sig.blobs})
    assert summary["copied"]["bytes"] > 0
    assert summary["skipped"] == {"manifests": 0, "blobs": 0, "bytes": 0}
    assert summary["referrers"] == [str(sig.digest)]
    # And back into the registry under another name: same digest, referrer restored.
    back = _repo()
    result = runner.invoke(
        app, ["copy", f"oci:{tmp_path}/l:v1", f"{any_registry.host}/{back}:v1", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["digest"] == str(art.digest)

    async def check() -> None:
        async with RegistryClient(any_registry.host) as client:
            listed = await client.referrers.list(back, art.digest)
            assert listed.digests() == {sig.digest}

    asyncio.run(check())


def test_copy_text_summary_and_no_referrers(any_registry: RegistryServer, tmp_path: Path) -> None:
    repo = _repo()
    art = image()
    _push(any_registry.host, repo, (art, "v1"), (referrer(art, "application/spdx+json"), None))
    result = runner.invoke(
        app,
        ["copy", f"{any_registry.host}/{repo}:v1", f"oci:{tmp_path}/l", "--no-referrers"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "Copied" in result.stdout and str(art.digest) in result.stdout
    assert "referrers  0" in result.stdout
    entries = OCILayout.open(tmp_path / "l").entries()
    assert [e.digest for e in entries] == [art.digest]


def test_copy_errors_and_exit_codes(distribution_registry: RegistryServer, tmp_path: Path) -> None:
    host = distribution_registry.host
    bad = runner.invoke(app, ["copy", f"{host}/UPPER:v1", f"oci:{tmp_path}/x", "-o", "json"])
    assert bad.exit_code == 2 and json.loads(bad.stderr)["error"]["code"] == "NAME_INVALID"
    long_name = "a" * 300
    too_long = runner.invoke(app, ["copy", f"{host}/{long_name}:v1", f"oci:{tmp_path}/x"])
    assert too_long.exit_code == 2 and "NAME_INVALID" in too_long.stderr
    unreachable = runner.invoke(
        app, ["copy", f"127.0.0.1:{free_port()}/a/b:v1", f"oci:{tmp_path}/x", "-o", "json"]
    )
    assert unreachable.exit_code == 3
    error = json.loads(unreachable.stderr)["error"]
    assert error["code"] == "UNREACHABLE" and "hint" in error
    missing = runner.invoke(app, ["copy", f"{host}/cli/none:v1", f"oci:{tmp_path}/x"])
    assert missing.exit_code == 2 and "NOT_FOUND" in missing.stderr
    insecure = runner.invoke(
        app, ["copy", "http://registry.example.com/a/b:v1", f"oci:{tmp_path}/x"]
    )
    assert insecure.exit_code == 2 and "INSECURE_REGISTRY" in insecure.stderr
    no_layout = runner.invoke(app, ["copy", f"oci:{tmp_path}/absent:v1", f"{host}/a/b:v1"])
    assert no_layout.exit_code == 2 and "NOT_FOUND" in no_layout.stderr
    assert not (tmp_path / "x").exists()  # failed copies leave no empty layout behind
    not_a_layout = tmp_path / "notes"
    not_a_layout.mkdir()
    (not_a_layout / "todo.txt").write_text("x")
    refused = runner.invoke(app, ["copy", f"{host}/cli/none:v1", f"oci:{not_a_layout}"])
    assert refused.exit_code == 2 and "INVALID_INPUT" in refused.stderr


def test_copy_from_a_tampered_layout_fails_verification(
    distribution_registry: RegistryServer, tmp_path: Path
) -> None:
    art = image()
    layout = OCILayout.create(tmp_path / "l")
    for digest, data in art.blobs.items():
        layout.write_blob(digest, data)
    layout.put_manifest(art.raw, art.descriptor(), "v1")
    config = json.loads(art.raw)["config"]["digest"]
    path = tmp_path / "l" / "blobs" / "sha256" / config.split(":")[1]
    path.write_bytes(path.read_bytes().replace(b"amd64", b"arm64"))
    result = runner.invoke(
        app,
        [
            "copy",
            f"oci:{tmp_path}/l:v1",
            f"{distribution_registry.host}/{_repo()}:v1",
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 1
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "DIGEST_MISMATCH" and config in error["message"]


def test_copy_in_a_subprocess(distribution_registry: RegistryServer, tmp_path: Path) -> None:
    """The real entry point: JSON on stdout only (no progress bar), errors on stderr."""
    repo = _repo()
    art = image()
    _push(distribution_registry.host, repo, (art, "v1"))
    cmd = [sys.executable, "-c", "from safeguard.cli.app import main; main()", "copy"]
    done = subprocess.run(
        [*cmd, f"{distribution_registry.host}/{repo}:v1", f"oci:{tmp_path}/l:v1", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["digest"] == str(art.digest)
    done = subprocess.run(
        [*cmd, f"127.0.0.1:{free_port()}/a/b:v1", f"oci:{tmp_path}/m"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3
    assert "UNREACHABLE" in done.stderr and "Traceback" not in done.stderr
