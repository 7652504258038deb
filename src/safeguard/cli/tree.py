"""``safeguard tree IMAGE``: what is attached to an artifact, shown like ``cosign tree``.

IMAGE is a registry reference or ``oci:DIR[:TAG]``. Referrers come from the OCI 1.1 referrers API,
the referrers tag schema, layout entries and cosign's ``.sig``/``.att``/``.sbom`` tags; they are
grouped as signatures, attestations and other (``safeguard.oci.discover``), with referrers of
referrers nested. ``--output json`` prints the same tree as JSON.
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from rich.text import Text
from rich.tree import Tree

from safeguard.cli.app import app
from safeguard.cli.output import (
    INSECURE_OPTION,
    OUTPUT_OPTION,
    OutputFormat,
    console,
    emit_json,
    reported,
)
from safeguard.oci.discover import discover
from safeguard.oci.location import Location, parse_location
from safeguard.oci.stores import open_store

_GROUP_LABELS = {
    "signatures": "🔐 Signatures",
    "attestations": "💾 Attestations",
    "other": "📎 Other artifacts (SBOMs, reports, ...)",
}


async def _tree(location: Location, allow_insecure: bool) -> dict[str, Any]:
    async with open_store(location, allow_insecure=allow_insecure) as store:
        _, data = await discover(store)
        return data


def render(data: dict[str, Any]) -> Tree:
    root = Tree(
        _label(
            f"📦 Supply chain artifacts for [bold]{data['reference']}[/]\n"
            f"   [dim]{data['digest']}[/]"
        ),
        highlight=False,
    )
    _add_groups(root, data)
    return root


def _label(markup: str) -> Text:
    # Fold rather than crop: a digest cut short with an ellipsis is useless.
    return Text.from_markup(markup, overflow="fold")


def _add_groups(parent: Tree, data: dict[str, Any]) -> None:
    for group, label in _GROUP_LABELS.items():
        entries = data.get(group) or []
        if not entries:
            continue
        branch = parent.add(_label(f"{label} ({len(entries)})"))
        for entry in entries:
            via = entry["source"] + (f" {entry['tag']}" if entry.get("tag") else "")
            kind = entry.get("artifactType") or entry["mediaType"]
            node = branch.add(
                _label(f"🍒 {entry['digest']}\n   [cyan]{kind}[/] [dim](via {via})[/]")
            )
            if entry.get("referrers"):
                _add_groups(node, entry["referrers"])


@app.command("tree")
def tree_command(
    image: str = typer.Argument(
        ..., help="REGISTRY/REPO:TAG, REGISTRY/REPO@DIGEST or oci:DIR[:TAG]"
    ),
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Show the signatures, attestations and other artifacts attached to IMAGE."""
    with reported(output):
        location = parse_location(image)
        data = asyncio.run(_tree(location, allow_insecure_registry))
    if output is OutputFormat.json:
        emit_json(data)
        return
    if not any(data[g] for g in _GROUP_LABELS):
        console.print(
            f"No signatures, attestations or other referrers for {data['reference']} "
            f"({data['digest']})",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(render(data))
