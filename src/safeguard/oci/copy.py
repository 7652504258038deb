"""Copying an artifact between registries and OCI layouts, with its children and referrers.

The source graph (``graph.py``) is walked first, so the totals are known before any byte moves:
then blobs are transferred (skipped when the destination has them, mounted across repositories of
one registry, else streamed through memory or a scratch file and verified), and manifests are
written in dependency order (an index's children before it, a subject before its referrers), each
from the exact bytes read, so every digest stays the same. Progress is reported through a
``CopyProgress`` callback: bytes as they move, and each blob or manifest when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.oci.graph import Node, Walker, ordered
from safeguard.oci.stores import Role, Store, require_same_digest, scratch_directory


class CopyProgress(Protocol):
    def planned(self, total_bytes: int, total_items: int) -> None: ...
    def advanced(self, nbytes: int) -> None: ...
    def item_done(self, kind: str, descriptor: Descriptor, action: str) -> None: ...


class NoProgress:
    def planned(self, total_bytes: int, total_items: int) -> None:
        pass

    def advanced(self, nbytes: int) -> None:
        pass

    def item_done(self, kind: str, descriptor: Descriptor, action: str) -> None:
        pass


@dataclass
class CopyReport:
    source: str
    destination: str
    digest: Digest
    manifests_copied: int = 0
    manifests_skipped: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    bytes_copied: int = 0
    bytes_skipped: int = 0
    referrers: list[Digest] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "digest": str(self.digest),
            "copied": {
                "manifests": self.manifests_copied,
                "blobs": self.blobs_copied,
                "bytes": self.bytes_copied,
            },
            "skipped": {
                "manifests": self.manifests_skipped,
                "blobs": self.blobs_skipped,
                "bytes": self.bytes_skipped,
            },
            "mounted": self.blobs_mounted,
            "referrers": [str(d) for d in self.referrers],
        }


async def copy_artifact(
    source: Store,
    destination: Store,
    *,
    referrers: bool = True,
    progress: CopyProgress | None = None,
    concurrency: int = 4,
) -> CopyReport:
    """Copy the artifact ``source`` names to ``destination``; returns what was done."""
    progress = progress or NoProgress()
    root_descriptor = await source.resolve_root()
    require_same_digest(destination, root_descriptor.digest)
    root = await Walker(source, referrers=referrers, attached_tags=referrers).walk(root_descriptor)
    plan = ordered(root)
    blobs = _unique_blobs([node for node, *_ in plan])
    report = CopyReport(source.display, destination.display, root.digest)
    report.referrers = [node.digest for node, role, *_ in plan if role in ("referrer", "attached")]
    report.referrers = list(dict.fromkeys(report.referrers))
    total = sum(b.size for b in blobs) + sum(len(n.raw) for n, *_ in plan)
    progress.planned(total, len(blobs) + len(plan))

    with scratch_directory() as scratch_dir:
        scratch = Path(scratch_dir)
        limit = asyncio.Semaphore(max(1, concurrency))

        async def one(blob: Descriptor) -> None:
            async with limit:
                await _copy_blob(source, destination, blob, scratch, progress, report)

        try:
            # A TaskGroup cancels the other transfers when one fails, before the scratch
            # directory goes away; the first failure is re-raised as itself.
            async with asyncio.TaskGroup() as group:
                for blob in blobs:
                    group.create_task(one(blob))
        except BaseExceptionGroup as failures:
            raise _first_leaf(failures) from None

    dest_tag = destination.tag if destination.digest is None else None
    for node, role, tag, subject in plan:
        if role == "root":
            tag = dest_tag
        await _copy_manifest(destination, node, role, tag, subject, progress, report)
    return report


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _unique_blobs(nodes: list[Node]) -> list[Descriptor]:
    out: dict[Digest, Descriptor] = {}
    for node in nodes:
        for blob in node.manifest.blobs():
            out.setdefault(blob.digest, blob)
    return list(out.values())


async def _copy_blob(
    source: Store,
    destination: Store,
    blob: Descriptor,
    scratch: Path,
    progress: CopyProgress,
    report: CopyReport,
) -> None:
    if await destination.has_blob(blob):
        report.blobs_skipped += 1
        report.bytes_skipped += blob.size
        progress.advanced(blob.size)
        progress.item_done("blob", blob, "skipped")
        return
    if await destination.try_mount(blob, source):
        report.blobs_mounted += 1
        report.bytes_skipped += blob.size
        progress.advanced(blob.size)
        progress.item_done("blob", blob, "mounted")
        return
    data, scratch_file = await source.read_blob(blob, scratch, progress.advanced)
    try:
        await destination.write_blob(blob, data)
    finally:
        if scratch_file and isinstance(data, Path):
            with contextlib.suppress(FileNotFoundError):
                data.unlink()
    report.blobs_copied += 1
    report.bytes_copied += blob.size
    progress.item_done("blob", blob, "copied")


async def _copy_manifest(
    destination: Store,
    node: Node,
    role: Role,
    tag: str | None,
    subject: Digest | None,
    progress: CopyProgress,
    report: CopyReport,
) -> None:
    descriptor = node.descriptor
    size = len(node.raw)
    present = await destination.has_manifest(descriptor)
    if tag is not None:
        present = present and await destination.tag_digest(tag) == node.digest
    if present:
        if role == "referrer" and subject is not None:
            await destination.ensure_referrer(subject, node.manifest.descriptor())
        report.manifests_skipped += 1
        report.bytes_skipped += size
        progress.advanced(size)
        progress.item_done("manifest", descriptor, "skipped")
        return
    await destination.write_manifest(descriptor, node.raw, role, tag)
    report.manifests_copied += 1
    report.bytes_copied += size
    progress.advanced(size)
    progress.item_done("manifest", descriptor, "copied")
