"""Loading the published test vectors kept under tests/fixtures/vectors/tlog (see SOURCES.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[2] / "fixtures" / "vectors" / "tlog"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")
