"""``safeguard sign``: sign an image as cosign v3 does, in both places verifiers look.

``sign --key KEYREF IMAGE`` resolves IMAGE to its digest (warning, as cosign does, when it was
given by tag), signs the cosign v3 statement into a Sigstore bundle attached as an OCI referrer,
and appends a legacy simple-signing layer to ``sha256-<hex>.sig`` (``--no-legacy-tag`` skips it).
KEYREF is a cosign key file (password from ``COSIGN_PASSWORD``, else a prompt on a terminal) or a
``pkcs11:`` URI. No transparency log is written yet: ``--tlog-upload`` must stay false (the
default) until Safeguard's log is configured, as ``cosign sign --tlog-upload=false``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from safeguard.cli.app import app
from safeguard.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    console,
    emit_json,
    err_console,
    reported,
)
from safeguard.cli.tree import INSECURE_OPTION
from safeguard.core.errors import InvalidInput
from safeguard.core.reference import Reference
from safeguard.keys.base import Signer
from safeguard.keys.cosign_keys import prompt_password
from safeguard.oci.client import RegistryClient
from safeguard.signing.keyref import open_signer
from safeguard.signing.sign import ImageSignResult, sign_image

SIGN_KEY_OPTION = typer.Option(
    ..., "--key", help="cosign key file (cosign.key) or pkcs11: URI of the signing key."
)
TLOG_UPLOAD_OPTION = typer.Option(
    False,
    "--tlog-upload/--no-tlog-upload",
    help="Record the signature in a transparency log (not available yet).",
)
YES_OPTION = typer.Option(False, "--yes", "-y", help="Skip confirmation (accepted for cosign).")
LEGACY_OPTION = typer.Option(
    True, "--legacy-tag/--no-legacy-tag", help="Also write cosign's sha256-<hex>.sig/.att tag."
)


def check_tlog_upload(tlog_upload: bool) -> None:
    if tlog_upload:
        raise InvalidInput(
            "no transparency log is configured for signing",
            hint="sign with --tlog-upload=false (the default) until Safeguard's log is set up",
        )


@contextmanager
def signer_for(keyref: str) -> Iterator[Signer]:
    prompt = prompt_password if sys.stdin.isatty() else None
    with open_signer(keyref, prompt=prompt) as signer:
        yield signer


def parse_annotations(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"annotation {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def report_signed(result: ImageSignResult, output: OutputFormat, what: str) -> None:
    for warning in result.warnings:
        err_console.print(f"WARNING: {warning}", highlight=False, soft_wrap=True)
    if output is OutputFormat.json:
        emit_json(result.as_dict())
        return
    console.print(f"Pushed {what} for {result.reference}", highlight=False, soft_wrap=True)
    console.print(f"  referrer: {result.referrer}", highlight=False, soft_wrap=True)
    if result.legacy is not None:
        state = "appended to" if result.legacy.appended else "already in"
        console.print(f"  legacy:   {state} {result.legacy.tag}", highlight=False, soft_wrap=True)


async def _sign(
    image: str, keyref: str, annotations: dict[str, str], legacy: bool, insecure: bool
) -> ImageSignResult:
    ref = Reference.parse(image)
    with signer_for(keyref) as signer:
        async with RegistryClient.for_reference(ref, allow_insecure=insecure) as client:
            return await sign_image(client, ref, signer, annotations=annotations, legacy=legacy)


@app.command("sign")
def sign_command(
    image: str = typer.Argument(
        ..., help="REGISTRY/REPO@DIGEST (or :TAG, resolved with a warning)"
    ),
    key: str = SIGN_KEY_OPTION,
    annotations: list[str] | None = typer.Option(
        None, "--annotations", "-a", help="KEY=VALUE annotation to sign (repeatable)."
    ),
    tlog_upload: bool = TLOG_UPLOAD_OPTION,
    legacy_tag: bool = LEGACY_OPTION,
    yes: bool = YES_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Sign IMAGE with a key file or a PKCS#11 key (cosign-compatible)."""
    with reported(output):
        check_tlog_upload(tlog_upload)
        result = asyncio.run(
            _sign(image, key, parse_annotations(annotations), legacy_tag, allow_insecure_registry)
        )
    report_signed(result, output, "signature")
