"""``safeguard generate-key-pair``: a cosign-compatible ``cosign.key``/``cosign.pub`` pair.

The files are the ones ``cosign generate-key-pair`` writes (``safeguard.keys.cosign_keys``), so
cosign can sign and verify with them and Safeguard can use cosign's. The password comes from
``COSIGN_PASSWORD`` or is asked for twice on the terminal.
"""

from __future__ import annotations

from pathlib import Path

import typer

from safeguard.cli.app import app
from safeguard.cli.output import OUTPUT_OPTION, OutputFormat, console, emit_json, reported
from safeguard.keys.cosign_keys import generate_key_pair


@app.command("generate-key-pair")
def generate_key_pair_command(
    output_key_prefix: Path = typer.Option(
        Path("cosign"), "--output-key-prefix", help="Write PREFIX.key and PREFIX.pub."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing key files."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Generate an encrypted ECDSA P-256 key pair in cosign's format."""
    with reported(output):
        key_path, pub_path = generate_key_pair(output_key_prefix, overwrite=force)
        if output is OutputFormat.json:
            emit_json({"privateKey": str(key_path), "publicKey": str(pub_path)})
        else:
            console.print(f"Private key written to {key_path}")
            console.print(f"Public key written to {pub_path}")
