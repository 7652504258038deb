"""The graph of an artifact: its manifest, an index's children, and referrers, recursively.

Walking from a root descriptor, every manifest is fetched (and verified against its digest),
an index's ``manifests`` are walked as children, and each manifest's referrers are looked up in
the store (referrers API, tag schema, or layout entries) together with cosign's attached tags
``<alg>-<hex>.sig``, ``.att`` and ``.sbom``, which carry signatures for clients that predate the
referrers API. Referrers of referrers are walked too. Nodes are shared by digest, so a hostile
store that claims a manifest refers to itself cannot make the walk loop; a cap on the number of
manifests bounds the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput
from safeguard.core.manifest import Descriptor, Manifest, parse_manifest
from safeguard.oci.referrers import referrers_tag
from safeguard.oci.stores import Role, Store

MAX_NODES: Final = 10_000
COSIGN_SUFFIXES: Final = (".sig", ".att", ".sbom")


@dataclass(eq=False)
class Node:
    descriptor: Descriptor
    raw: bytes
    manifest: Manifest
    children: list[Node] = field(default_factory=list)
    referrers: list[Edge] = field(default_factory=list)

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest

    @property
    def artifact_type(self) -> str | None:
        return self.descriptor.artifact_type or self.manifest.effective_artifact_type


@dataclass(eq=False)
class Edge:
    node: Node
    via: str  # "referrers-api", "tag-schema", "layout" or "cosign-tag"
    tag: str | None = None


class Walker:
    def __init__(
        self,
        store: Store,
        *,
        referrers: bool = True,
        children: bool = True,
        attached_tags: bool = True,
        max_nodes: int = MAX_NODES,
    ) -> None:
        self.store = store
        self.with_referrers = referrers
        self.with_children = children
        self.with_attached = attached_tags
        self.max_nodes = max_nodes
        self.nodes: dict[Digest, Node] = {}

    async def walk(self, root: Descriptor) -> Node:
        return await self._visit(root)

    async def _visit(self, descriptor: Descriptor) -> Node:
        known = self.nodes.get(descriptor.digest)
        if known is not None:
            return known
        if len(self.nodes) >= self.max_nodes:
            raise InvalidInput(
                f"{self.store.display}: more than {self.max_nodes} manifests reachable",
                hint="the artifact graph is too large or the store is hostile",
            )
        raw = await self.store.fetch_manifest(descriptor)
        manifest = parse_manifest(raw, descriptor.media_type)
        node = Node(descriptor, raw, manifest)
        self.nodes[descriptor.digest] = node
        if self.with_children and manifest.is_index:
            for child in manifest.manifests:
                if child.media_type in mt.MANIFESTS:
                    node.children.append(await self._visit(child))
        if self.with_referrers:
            await self._referrers(node)
        return node

    async def _referrers(self, node: Node) -> None:
        for descriptor, via in await self.store.referrers(node.digest):
            if descriptor.media_type not in mt.MANIFESTS or descriptor.digest == node.digest:
                continue
            node.referrers.append(Edge(await self._visit(descriptor), via))
        if not self.with_attached:
            return
        base = referrers_tag(node.digest)
        for suffix in COSIGN_SUFFIXES:
            tag = base + suffix
            found = await self.store.resolve_tag(tag)
            if found is None or found.media_type not in mt.MANIFESTS:
                continue
            node.referrers.append(Edge(await self._visit(found), "cosign-tag", tag))


def ordered(root: Node) -> list[tuple[Node, Role, str | None, Digest | None]]:
    """Manifests in the order to write them, each with its role, tag and subject:
    an index's children before it, a subject before its referrers."""
    out: list[tuple[Node, Role, str | None, Digest | None]] = []
    seen: set[Digest] = set()

    def emit(node: Node, role: Role, tag: str | None, subject: Digest | None) -> None:
        if node.digest in seen:
            if role in ("referrer", "attached"):
                out.append((node, role, tag, subject))  # listed or tagged once more
            return
        seen.add(node.digest)
        for child in node.children:
            emit(child, "child", None, None)
        out.append((node, role, tag, subject))
        for edge in node.referrers:
            if edge.via == "cosign-tag":
                emit(edge.node, "attached", edge.tag, None)
            else:
                emit(edge.node, "referrer", None, node.digest)

    emit(root, "root", None, None)
    return out
