"""What is attached to an artifact: its referrers tree, grouped as ``cosign tree`` shows it.

Each referrer (OCI 1.1 referrers API, referrers tag schema, layout entry, or cosign's attached
``.sig``/``.att``/``.sbom`` tags) is put in one group:

* ``signatures``: artifactType in ``mediatypes.SIGNATURE_ARTIFACT_TYPES``, or a ``.sig`` tag;
* ``attestations``: artifactType in ``mediatypes.ATTESTATION_ARTIFACT_TYPES``, a ``.att`` tag, or
  a Sigstore bundle whose ``dev.sigstore.bundle.predicateType`` annotation names a predicate other
  than cosign's signing one (cosign v3 writes that annotation on both kinds, with
  ``https://sigstore.dev/cosign/sign/v1`` for signatures);
* ``other``: everything else (SBOMs, scan reports, ...).

Referrers of referrers are nested under the referrer they point at.
"""

from __future__ import annotations

from typing import Any, Final

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.oci.graph import Edge, Node, Walker
from safeguard.oci.stores import Store

GROUPS: Final = ("signatures", "attestations", "other")
PREDICATE_ANNOTATION: Final = "dev.sigstore.bundle.predicateType"
COSIGN_SIGN_PREDICATE: Final = "https://sigstore.dev/cosign/sign/v1"


def classify(edge: Edge) -> str:
    if edge.tag is not None:
        if edge.tag.endswith(".sig"):
            return "signatures"
        if edge.tag.endswith(".att"):
            return "attestations"
        return "other"
    artifact_type = edge.node.artifact_type
    annotations = {**edge.node.manifest.annotations, **edge.node.descriptor.annotations}
    predicate = annotations.get(PREDICATE_ANNOTATION)
    if artifact_type == mt.SIGSTORE_BUNDLE_V03 and predicate not in (None, COSIGN_SIGN_PREDICATE):
        return "attestations"
    if artifact_type in mt.SIGNATURE_ARTIFACT_TYPES:
        return "signatures"
    if artifact_type in mt.ATTESTATION_ARTIFACT_TYPES:
        return "attestations"
    return "other"


async def discover(store: Store) -> tuple[Node, dict[str, Any]]:
    """Walk the referrers of the artifact ``store`` names; returns the graph and its tree."""
    root_descriptor = await store.resolve_root()
    walker = Walker(store, referrers=True, children=False, attached_tags=True)
    root = await walker.walk(root_descriptor)
    tree = {
        "reference": store.display,
        "digest": str(root.digest),
        "mediaType": root.descriptor.media_type,
        **grouped(root, {root.digest}),
    }
    return root, tree


def grouped(node: Node, path: set[Digest]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for edge in node.referrers:
        if edge.node.digest in path:  # a hostile store claiming a cycle
            continue
        entry: dict[str, Any] = {
            "digest": str(edge.node.digest),
            "mediaType": edge.node.descriptor.media_type,
            "artifactType": edge.node.artifact_type,
            "size": len(edge.node.raw),
            "source": edge.via,
            "annotations": dict(edge.node.manifest.annotations),
        }
        if edge.tag is not None:
            entry["tag"] = edge.tag
        if not edge.node.manifest.is_index:
            entry["layers"] = len(edge.node.manifest.layers)
        nested = grouped(edge.node, path | {edge.node.digest})
        if any(nested.values()):
            entry["referrers"] = nested
        out[classify(edge)].append(entry)
    return out
