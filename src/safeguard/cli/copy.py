"""``safeguard copy SRC DST``: copy an artifact with its children and referrers.

SRC and DST are registry references or ``oci:DIR[:TAG]`` layouts (skopeo's naming). Referrers,
referrers of referrers and cosign's attached tags come along unless ``--no-referrers``. Progress
is a Rich bar on stderr when it is a terminal and the output is text; the summary is text or,
with ``--output json``, a JSON object (source, destination, digest, copied and skipped counts).
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from safeguard.cli.app import app
from safeguard.cli.output import (
    INSECURE_OPTION,
    OUTPUT_OPTION,
    OutputFormat,
    console,
    emit_json,
    err_console,
    reported,
)
from safeguard.core.manifest import Descriptor
from safeguard.oci.copy import CopyReport, copy_artifact
from safeguard.oci.location import Location, parse_location
from safeguard.oci.stores import open_store


class RichCopyProgress:
    """``CopyProgress`` drawn as one Rich bar: bytes, and items done out of planned."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID = progress.add_task("resolving", total=None, items="")
        self.items = 0
        self.total_items = 0

    def planned(self, total_bytes: int, total_items: int) -> None:
        self.total_items = total_items
        self.progress.update(
            self.task, description="copying", total=total_bytes, items=f"0/{total_items}"
        )

    def advanced(self, nbytes: int) -> None:
        self.progress.advance(self.task, nbytes)

    def item_done(self, kind: str, descriptor: Descriptor, action: str) -> None:
        self.items += 1
        self.progress.update(self.task, items=f"{self.items}/{self.total_items}")


async def _copy(
    source: Location, destination: Location, *, referrers: bool, insecure: bool, show: bool
) -> CopyReport:
    async with (
        open_store(source, allow_insecure=insecure) as src,
        open_store(destination, write=True, allow_insecure=insecure) as dst,
    ):
        if not show:
            return await copy_artifact(src, dst, referrers=referrers)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[items]} items"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            return await copy_artifact(
                src, dst, referrers=referrers, progress=RichCopyProgress(bar)
            )


def _summary(report: CopyReport) -> str:
    data: dict[str, Any] = report.to_dict()
    copied, skipped = data["copied"], data["skipped"]
    lines = [
        f"Copied {report.source} -> {report.destination}",
        f"  digest     {report.digest}",
        f"  manifests  {copied['manifests']} copied, {skipped['manifests']} already there",
        f"  blobs      {copied['blobs']} copied, {skipped['blobs']} already there, "
        f"{report.blobs_mounted} mounted",
        f"  bytes      {copied['bytes']} copied, {skipped['bytes']} skipped",
        f"  referrers  {len(report.referrers)}",
    ]
    return "\n".join(lines)


@app.command("copy")
def copy_command(
    src: str = typer.Argument(
        ..., help="Source: REGISTRY/REPO:TAG, REGISTRY/REPO@DIGEST or oci:DIR[:TAG]"
    ),
    dst: str = typer.Argument(..., help="Destination: REGISTRY/REPO[:TAG] or oci:DIR[:TAG]"),
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
    no_referrers: bool = typer.Option(
        False, "--no-referrers", help="Copy only the artifact, not what refers to it."
    ),
) -> None:
    """Copy an artifact, its children and (by default) its referrers, keeping every digest."""
    with reported(output):
        source = parse_location(src)
        destination = parse_location(dst)
        show = output is OutputFormat.text and err_console.is_terminal
        report = asyncio.run(
            _copy(
                source,
                destination,
                referrers=not no_referrers,
                insecure=allow_insecure_registry,
                show=show,
            )
        )
    if output is OutputFormat.json:
        emit_json(report.to_dict())
    else:
        console.print(_summary(report), highlight=False, soft_wrap=True)
