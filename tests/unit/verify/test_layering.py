"""The rooms' dependencies point one way (DESIGN.md, "Layout"): the verifier imports neither the
signing service nor any surface, and the policy's models import no verifier (the policy ->
verify -> policy cycle is broken on the policy's side). Checked on the source (every import
statement, including those inside functions and under ``TYPE_CHECKING``) and by importing in a
fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import safeguard

SRC = Path(safeguard.__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def offending(room: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in sorted((SRC / room).rglob("*.py")):
        bad = sorted(m for m in imported_modules(path) if m.startswith(forbidden))
        if bad:
            found[str(path.relative_to(SRC))] = bad
    return found


def test_verify_imports_no_signing_service_and_no_surface() -> None:
    surfaces = ("gateway", "admission", "mirror", "audit", "cleanup", "cli", "server")
    forbidden = ("safeguard.signing", *(f"safeguard.{s}" for s in surfaces))
    assert offending("verify", forbidden) == {}


def test_the_policy_schema_imports_no_verifier() -> None:
    assert not [m for m in imported_modules(SRC / "policy" / "schema.py") if "verify" in m]


def test_importing_the_policy_bridge_loads_no_signing_module() -> None:
    code = (
        "import sys\n"
        "import safeguard.verify.from_policy, safeguard.verify.custody_check\n"
        "import safeguard.policy.schema\n"
        "print(sorted(m for m in sys.modules if m.startswith('safeguard.signing')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_the_cli_still_finds_load_verification_key_where_it_was() -> None:
    from safeguard.keys.verification import load_verification_key
    from safeguard.signing import keyref

    assert keyref.load_verification_key is load_verification_key
