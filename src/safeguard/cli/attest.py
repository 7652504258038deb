"""``safeguard attest``: attach a signed in-toto attestation to an image, as cosign does.

``attest --key KEYREF --predicate FILE --type slsaprovenance1|custom|<URI> IMAGE`` wraps the
predicate in an in-toto Statement v1 about IMAGE's digest, signs it as a DSSE envelope, and writes
it as a Sigstore bundle referrer (with the ``dev.sigstore.bundle.predicateType`` annotation) and
as a layer of the legacy ``sha256-<hex>.att`` tag. ``--type custom`` wraps the file as cosign does.
``--tlog-url`` logs the envelope as a ``dsse`` 0.0.1 entry (see ``safeguard.cli.sign``).
``--signing-server URL`` has the signing service sign it in CI (see ``safeguard.cli.sign``); there
``--predicate`` may be left out, and the service attests SLSA provenance it builds from the job's
verified token.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from safeguard.cli.app import app
from safeguard.cli.output import INSECURE_OPTION, OUTPUT_OPTION, OutputFormat, reported
from safeguard.cli.sign import (
    IDENTITY_TOKEN_FILE_OPTION,
    IDENTITY_TOKEN_OPTION,
    IMAGE_KEY_OPTION,
    LEGACY_OPTION,
    SIGNING_SERVER_OPTION,
    TLOG_UPLOAD_OPTION,
    TLOG_URL_OPTION,
    YES_OPTION,
    report_signed,
    require_key,
    sign_through_server,
    signer_for,
    tlog_for,
)
from safeguard.core.errors import InvalidInput
from safeguard.core.reference import Reference
from safeguard.oci.client import RegistryClient
from safeguard.signing.sign import ImageSignResult, attest_image
from safeguard.tlog.client import RekorClient
from safeguard.verify.attestations import build_predicate, resolve_predicate_type

PREDICATE_OPTION = typer.Option(..., "--predicate", help="Path to the predicate file.")
IMAGE_PREDICATE_OPTION = typer.Option(
    None,
    "--predicate",
    help="Path to the predicate file (with --signing-server, default: provenance from the token).",
)
TYPE_OPTION = typer.Option(
    "custom", "--type", help="slsaprovenance1, slsaprovenance, spdxjson, cyclonedx, custom or a URI"
)


def read_predicate(path: Path, type_name: str) -> tuple[str, dict[str, object]]:
    predicate_type = resolve_predicate_type(type_name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read predicate {path}: {exc.strerror}") from None
    return predicate_type, build_predicate(type_name, data)


async def _attest(
    image: str,
    keyref: str,
    path: Path,
    type_name: str,
    legacy: bool,
    insecure: bool,
    tlog: RekorClient | None,
) -> ImageSignResult:
    ref = Reference.parse(image)
    predicate_type, predicate = read_predicate(path, type_name)
    with signer_for(keyref) as signer:
        async with RegistryClient.for_reference(ref, allow_insecure=insecure) as client:
            return await attest_image(
                client, ref, signer, predicate_type, predicate, tlog=tlog, legacy=legacy
            )


@app.command("attest")
def attest_command(
    image: str = typer.Argument(..., help="REGISTRY/REPO@DIGEST (or :TAG)"),
    key: str | None = IMAGE_KEY_OPTION,
    predicate: Path | None = IMAGE_PREDICATE_OPTION,
    type_: str = TYPE_OPTION,
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
    """Attest a predicate about IMAGE (cosign-compatible), or in CI through the signing service
    (--signing-server)."""
    if signing_server is not None:
        predicate_type = predicate_doc = None
        if predicate is not None:
            with reported(output):
                predicate_type, predicate_doc = read_predicate(predicate, type_)
        sign_through_server(
            image,
            signing_server,
            "attestation",
            output,
            key=key,
            tlog_url=tlog_url,
            identity_token=identity_token,
            identity_token_file=identity_token_file,
            legacy=legacy_tag,
            insecure=allow_insecure_registry,
            predicate_type=predicate_type,
            predicate=predicate_doc,
        )
        return
    key = require_key(key, output)
    if predicate is None:
        with reported(output):
            raise InvalidInput("--predicate FILE is required", hint="give the predicate to attest")
    with reported(output), tlog_for(tlog_url, tlog_upload) as tlog:
        result = asyncio.run(
            _attest(image, key, predicate, type_, legacy_tag, allow_insecure_registry, tlog)
        )
        report_signed(result, output, "attestation", tlog)
