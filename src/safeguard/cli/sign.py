"""``safeguard sign``: sign an image as cosign v3 does, in both places verifiers look.

``sign --key KEYREF IMAGE`` resolves IMAGE to its digest (warning, as cosign does, when it was
given by tag), signs the cosign v3 statement into a Sigstore bundle attached as an OCI referrer,
and appends a legacy simple-signing layer to ``sha256-<hex>.sig`` (``--no-legacy-tag`` skips it).
KEYREF is a cosign key file (password from ``COSIGN_PASSWORD``, else a prompt on a terminal) or a
``pkcs11:`` URI.

Transparency log: ``--tlog-url URL`` (alias ``--rekor-url``, or ``SAFEGUARD_TLOG_URL``) records
every signature in that Rekor v1 log (Safeguard's, mounted by ``safeguard serve``) through
``safeguard.tlog.client.RekorClient`` and embeds the checked entry (SET, inclusion proof,
checkpoint) in the bundle and, for the legacy layer, in cosign's ``dev.sigstore.cosign/bundle``
annotation. Unlike cosign, whose ``--tlog-upload`` defaults to true against the public Rekor,
uploading here defaults to on exactly when a log URL is given: Safeguard knows no public log to
default to. ``--tlog-upload`` without a URL is a usage error; ``--no-tlog-upload`` skips the log.

Signing service: ``--signing-server URL`` (no ``--key``) signs in a CI job as the job's build
role: the job's OIDC ID token (``--identity-token``/``--identity-token-file``, or the CI
environment) goes to Safeguard's signing service, which signs with the identity's HSM key and logs
the entries, and what it returns is attached here (``safeguard.signing.client``). Without a CI
token this refuses with exit code 2: signing that way happens in CI only.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import typer

from safeguard.cli.app import app
from safeguard.cli.output import (
    INSECURE_OPTION,
    OUTPUT_OPTION,
    OutputFormat,
    console,
    emit_json,
    err_console,
    fail,
    reported,
)
from safeguard.core.errors import InvalidInput
from safeguard.core.reference import Reference
from safeguard.keys.base import Signer
from safeguard.keys.cosign_keys import prompt_password
from safeguard.oci.client import RegistryClient
from safeguard.signing.keyref import open_signer
from safeguard.signing.sign import ImageSignResult, sign_image
from safeguard.tlog.client import RekorClient

SIGN_KEY_OPTION = typer.Option(
    ..., "--key", help="cosign key file (cosign.key) or pkcs11: URI of the signing key."
)
IMAGE_KEY_OPTION = typer.Option(
    None,
    "--key",
    help="cosign key file (cosign.key) or pkcs11: URI of the signing key "
    "(not with --signing-server).",
)
SIGNING_SERVER_OPTION = typer.Option(
    None,
    "--signing-server",
    envvar="SAFEGUARD_SIGNING_SERVER",
    help="Sign through Safeguard's signing service at this URL as the CI job's build role "
    "(its OIDC token; no --key). Signing this way happens in CI only.",
)
IDENTITY_TOKEN_OPTION = typer.Option(
    None,
    "--identity-token",
    help="With --signing-server: the CI job's OIDC ID token, or a file holding it "
    "(default: from the CI environment).",
)
IDENTITY_TOKEN_FILE_OPTION = typer.Option(
    None, "--identity-token-file", help="With --signing-server: a file holding the ID token."
)
TLOG_URL_ENV: Final = "SAFEGUARD_TLOG_URL"
TLOG_URL_OPTION = typer.Option(
    None,
    "--tlog-url",
    "--rekor-url",
    envvar=TLOG_URL_ENV,
    help="Record the signature in the Rekor v1 transparency log at this URL "
    "(e.g. Safeguard's `safeguard serve`).",
)
TLOG_UPLOAD_OPTION = typer.Option(
    None,
    "--tlog-upload/--no-tlog-upload",
    help="Record the signature in the log of --tlog-url (default: on when a URL is given).",
)
YES_OPTION = typer.Option(False, "--yes", "-y", help="Skip confirmation (accepted for cosign).")
LEGACY_OPTION = typer.Option(
    True, "--legacy-tag/--no-legacy-tag", help="Also write cosign's sha256-<hex>.sig/.att tag."
)


@contextmanager
def tlog_for(tlog_url: str | None, tlog_upload: bool | None) -> Iterator[RekorClient | None]:
    """The log client the flags ask for, or ``None`` (no upload)."""
    upload = tlog_url is not None if tlog_upload is None else tlog_upload
    if not upload:
        yield None
        return
    if tlog_url is None:
        raise InvalidInput(
            "--tlog-upload needs a transparency log, and none is configured",
            hint=f"give --tlog-url URL (or set {TLOG_URL_ENV}), or sign with --no-tlog-upload",
        )
    with RekorClient(tlog_url) as client:
        yield client


def tlog_summary(client: RekorClient | None) -> list[dict[str, Any]]:
    """What was logged, for ``--output json``."""
    if client is None:
        return []
    return [
        {
            "url": client.url,
            "uuid": s.uuid,
            "logIndex": s.entry.log_index,
            "kind": f"{s.entry.kind}/{s.entry.version}",
            "integratedTime": s.entry.integrated_time,
            "created": s.created,
        }
        for s in client.submissions
    ]


def report_tlog(client: RekorClient | None) -> None:
    """Text mode: each logged entry, and the checkpoint-name warning, on stderr."""
    if client is None:
        return
    for item in tlog_summary(client):
        state = "created" if item["created"] else "already present"
        err_console.print(
            f"tlog entry {state} with index: {item['logIndex']} ({item['kind']}, {item['url']})",
            highlight=False,
            soft_wrap=True,
        )
    warning = client.note_name_warning()
    if warning:
        err_console.print(f"note: {warning}", highlight=False, soft_wrap=True)


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


def report_signed(
    result: ImageSignResult, output: OutputFormat, what: str, tlog: RekorClient | None = None
) -> None:
    for warning in result.warnings:
        err_console.print(f"note: {warning}", highlight=False, soft_wrap=True)
    if output is OutputFormat.json:
        doc = result.as_dict()
        if tlog is not None:
            doc["tlog"] = tlog_summary(tlog)
            name_warning = tlog.note_name_warning()
            if name_warning:
                doc.setdefault("warnings", []).append(name_warning)
        emit_json(doc)
        return
    report_tlog(tlog)
    console.print(f"Pushed {what} for {result.reference}", highlight=False, soft_wrap=True)
    console.print(f"  referrer: {result.referrer}", highlight=False, soft_wrap=True)
    if result.legacy is not None:
        state = "appended to" if result.legacy.appended else "already in"
        console.print(f"  legacy:   {state} {result.legacy.tag}", highlight=False, soft_wrap=True)


async def _sign(
    image: str,
    keyref: str,
    annotations: dict[str, str],
    legacy: bool,
    insecure: bool,
    tlog: RekorClient | None,
) -> ImageSignResult:
    ref = Reference.parse(image)
    with signer_for(keyref) as signer:
        async with RegistryClient.for_reference(ref, allow_insecure=insecure) as client:
            return await sign_image(
                client, ref, signer, annotations=annotations, tlog=tlog, legacy=legacy
            )


def sign_through_server(
    image: str,
    server: str,
    kind: str,
    output: OutputFormat,
    *,
    key: str | None,
    tlog_url: str | None,
    identity_token: str | None,
    identity_token_file: Path | None,
    legacy: bool,
    insecure: bool,
    annotations: dict[str, str] | None = None,
    predicate_type: str | None = None,
    predicate: dict[str, Any] | None = None,
) -> None:
    """``--signing-server``: the CI client of ``safeguard.signing.client`` (key-less here)."""
    from safeguard.signing.client import sign_via_server

    with reported(output):
        if key is not None or tlog_url is not None:
            raise InvalidInput(
                "--signing-server signs with the service's key and logs in its log",
                hint="drop --key and --tlog-url when signing through --signing-server",
            )
        signed = asyncio.run(
            sign_via_server(
                image,
                server,
                kind=kind,
                identity_token=identity_token,
                identity_token_file=identity_token_file,
                predicate_type=predicate_type,
                predicate=predicate,
                annotations=annotations,
                legacy=legacy,
                insecure=insecure,
            )
        )
        if output is OutputFormat.json:
            emit_json(signed.as_dict())
            return
        what = "signature" if kind == "signature" else "attestation"
        report_signed(signed.result, output, what)
        console.print(
            f"  signed as identity {signed.identity} (log indexes "
            f"{', '.join(map(str, signed.material.log_indexes))})",
            highlight=False,
            soft_wrap=True,
        )


def require_key(key: str | None, output: OutputFormat) -> str:
    if key is None:
        fail(
            InvalidInput(
                "a key is needed: --key KEYREF",
                hint="or, in CI, sign through the signing service with --signing-server URL",
            ),
            output,
        )
    return key


@app.command("sign")
def sign_command(
    image: str = typer.Argument(
        ..., help="REGISTRY/REPO@DIGEST (or :TAG, resolved with a warning)"
    ),
    key: str | None = IMAGE_KEY_OPTION,
    annotations: list[str] | None = typer.Option(
        None, "--annotations", "-a", help="KEY=VALUE annotation to sign (repeatable)."
    ),
    tlog_url: str | None = TLOG_URL_OPTION,
    tlog_upload: bool | None = TLOG_UPLOAD_OPTION,
    legacy_tag: bool = LEGACY_OPTION,
    yes: bool = YES_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
    signing_server: str | None = SIGNING_SERVER_OPTION,
    identity_token: str | None = IDENTITY_TOKEN_OPTION,
    identity_token_file: Path | None = IDENTITY_TOKEN_FILE_OPTION,
) -> None:
    """Sign IMAGE with a key file or a PKCS#11 key (cosign-compatible), or in CI through the
    signing service (--signing-server)."""
    if signing_server is not None:
        with reported(output):
            notes = parse_annotations(annotations)
        sign_through_server(
            image,
            signing_server,
            "signature",
            output,
            key=key,
            tlog_url=tlog_url,
            identity_token=identity_token,
            identity_token_file=identity_token_file,
            legacy=legacy_tag,
            insecure=allow_insecure_registry,
            annotations=notes,
        )
        return
    key = require_key(key, output)
    with reported(output), tlog_for(tlog_url, tlog_upload) as tlog:
        result = asyncio.run(
            _sign(
                image,
                key,
                parse_annotations(annotations),
                legacy_tag,
                allow_insecure_registry,
                tlog,
            )
        )
        report_signed(result, output, "signature", tlog)
