"""docs/policy.md stays true: its full example is the shared example and validates."""

from __future__ import annotations

import re
from pathlib import Path

from safeguard.policy import load_policy_text
from tests.fixtures.policy import POLICY_DIR, example_text

DOC = Path(__file__).resolve().parents[3] / "docs" / "policy.md"


def test_documented_example_is_the_shared_one_and_valid() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    full = next(b for b in blocks if "apiVersion: safeguard.dev/v1" in b)
    modeline, _, body = full.partition("\n")
    assert modeline == "# yaml-language-server: $schema=./safeguard.schema.json"
    shared = example_text().split("apiVersion:", 1)[1]
    documented = body.split("apiVersion:", 1)[1]
    strip = re.compile(r"[ \t]+#.*$", re.MULTILINE)  # the doc may trim trailing comments
    assert strip.sub("", documented) == strip.sub("", shared)
    policy = load_policy_text(full, base_dir=POLICY_DIR).policy
    assert [i.name for i in policy.identities] == [
        "team-a-release",
        "oss-release",
        "release-engineer-jdoe",
    ]
