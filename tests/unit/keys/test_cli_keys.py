from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import safeguard.cli.keys  # noqa: F401  (registers the command on the app)
from safeguard.cli.app import app
from safeguard.keys.cosign_keys import load_signer


def test_generate_key_pair_command(tmp_path: Path) -> None:
    runner = CliRunner()
    prefix = tmp_path / "release"
    result = runner.invoke(
        app,
        ["generate-key-pair", "--output-key-prefix", str(prefix), "-o", "json"],
        env={"COSIGN_PASSWORD": "pw"},
    )
    assert result.exit_code == 0, result.output
    paths = json.loads(result.stdout)
    assert paths["privateKey"].endswith("release.key")
    signer = load_signer(Path(paths["privateKey"]), "pw")
    assert signer.public_key_pem == Path(paths["publicKey"]).read_bytes()
    again = runner.invoke(
        app, ["generate-key-pair", "--output-key-prefix", str(prefix)], env={"COSIGN_PASSWORD": "x"}
    )
    assert again.exit_code == 2
