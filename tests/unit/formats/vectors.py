"""Paths and loaders for the published test vectors in tests/fixtures/vectors (see SOURCES.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[2] / "fixtures" / "vectors"


def read(relative: str) -> bytes:
    return (VECTORS / relative).read_bytes()


def containers_image_signature(directory: str, name: str = "signature-1") -> dict[str, Any]:
    """containers/image's on-disk signature format: a ``\\x00sigstore-json\\n`` header, then JSON
    ``{"mimeType", "payload" (base64), "annotations"}`` exactly as cosign wrote the layer."""
    raw = read(f"containers-image/{directory}/{name}")
    header = b"\x00sigstore-json\n"
    assert raw.startswith(header)
    doc: dict[str, Any] = json.loads(raw[len(header) :])
    doc["payload"] = base64.b64decode(doc["payload"])
    return doc
