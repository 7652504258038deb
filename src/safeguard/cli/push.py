"""``safeguard push --key KEYREF SRC DST``: push, sign, then tag — the order a gateway in
``reject`` mode wants, as one command.

1. SRC (a registry reference, or ``oci:DIR[:TAG]``, as ``safeguard copy`` takes them) is copied
   to DST's repository **by digest**, with its index children and referrers
   (``safeguard.oci.copy``): a push by digest is always allowed;
2. the digest is signed in DST (``safeguard.signing.sign_image``: a Sigstore bundle referrer and
   the cosign ``.sig`` tag, the log entry too with ``--tlog-url``);
3. DST's tag is pushed last, now that a valid signature exists for the digest.

KEYREF is a cosign key file (``COSIGN_PASSWORD``) or a ``pkcs11:`` URI. DST must name a tag.
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from safeguard.cli.app import app
from safeguard.cli.output import (
    INSECURE_OPTION,
    OUTPUT_OPTION,
    OutputFormat,
    console,
    emit_json,
    reported,
)
from safeguard.cli.sign import (
    TLOG_UPLOAD_OPTION,
    TLOG_URL_OPTION,
    report_tlog,
    signer_for,
    tlog_for,
    tlog_summary,
)
from safeguard.core.errors import InvalidInput
from safeguard.oci.location import Location, parse_location
from safeguard.tlog.client import RekorClient


def _destination(text: str) -> Location:
    location = parse_location(text)
    ref = location.reference
    if ref is None or ref.digest is not None or ref.tag is None or not text.endswith(ref.tag):
        raise InvalidInput(
            f"destination {text!r} must be a registry reference with a tag",
            hint="write HOST/REPO:TAG",
        )
    return location


async def push_signed(
    source_text: str,
    destination: Location,
    keyref: str,
    *,
    allow_insecure: bool,
    tlog: RekorClient | None,
) -> dict[str, Any]:
    from safeguard.oci.copy import copy_artifact
    from safeguard.oci.stores import RegistryStore, open_store
    from safeguard.signing.sign import sign_image

    target = destination.reference
    assert target is not None and target.tag is not None
    source_location = parse_location(source_text)
    async with open_store(source_location, allow_insecure=allow_insecure) as source:
        root = await source.resolve_root()
        by_digest = Location(reference=target.with_digest(root.digest), scheme=destination.scheme)
        async with open_store(by_digest, write=True, allow_insecure=allow_insecure) as dest:
            assert isinstance(dest, RegistryStore)
            report = await copy_artifact(source, dest, referrers=True)
            with signer_for(keyref) as signer:
                signed = await sign_image(
                    dest.client, target.with_digest(root.digest), signer, tlog=tlog
                )
            raw = await source.fetch_manifest(root)
            await dest.client.manifests.put(target.repository, target.tag, raw, root.media_type)
    return {
        "source": source_text,
        "destination": str(target),
        "digest": str(root.digest),
        "copied": report.to_dict(),
        "signature": signed.as_dict(),
        "tagged": f"{target.name}:{target.tag}",
    }


@app.command("push")
def push_command(
    source: str = typer.Argument(
        ..., help="image to push: REGISTRY/REPO[:TAG|@DIGEST] or oci:DIR[:TAG]"
    ),
    destination: str = typer.Argument(..., help="where: HOST/REPO:TAG"),
    key: str = typer.Option(..., "--key", help="cosign key file or pkcs11: URI to sign with"),
    tlog_url: str | None = TLOG_URL_OPTION,
    tlog_upload: bool | None = TLOG_UPLOAD_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Push SRC to DST by digest, sign it, then tag it (what a signing gateway accepts)."""
    with reported(output), tlog_for(tlog_url, tlog_upload) as tlog:
        target = _destination(destination)
        doc = asyncio.run(
            push_signed(source, target, key, allow_insecure=allow_insecure_registry, tlog=tlog)
        )
        if tlog is not None:
            doc["tlog"] = tlog_summary(tlog)
    if output is OutputFormat.json:
        emit_json(doc)
        return
    report_tlog(tlog)
    console.print(
        f"Pushed {doc['destination']}@{doc['digest']}, signed it "
        f"(referrer {doc['signature']['referrer']}), then tagged {doc['tagged']}",
        highlight=False,
        soft_wrap=True,
    )
