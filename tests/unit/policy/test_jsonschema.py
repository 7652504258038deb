"""The exported JSON Schema: current, draft 2020-12, described, and covering the example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safeguard.policy.jsonschema import DIALECT, policy_json_schema, policy_json_schema_text
from safeguard.policy.yamlsafe import parse_policy_yaml
from tests.fixtures.policy import example_text

EXPORTED = Path(__file__).resolve().parents[3] / "docs" / "safeguard.schema.json"


def test_exported_schema_is_current() -> None:
    assert EXPORTED.read_text(encoding="utf-8") == policy_json_schema_text(), (
        "docs/safeguard.schema.json is stale: run "
        "`safeguard policy schema --out docs/safeguard.schema.json`"
    )


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    for option in node.get("anyOf", []):
        if option.get("type") != "null":
            return _resolve(schema, option)
    return node


def _walk(schema: dict[str, Any], node: dict[str, Any], value: Any, path: str) -> None:
    node = _resolve(schema, node)
    if isinstance(value, dict):
        assert node.get("type") == "object", path
        if "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, child in value.items():
                assert key in node["properties"], f"{path}.{key} is not in the schema"
                _walk(schema, node["properties"][key], child, f"{path}.{key}")
        else:
            (child_schema,) = node["patternProperties"].values()
            for key, child in value.items():
                _walk(schema, child_schema, child, f"{path}.{key}")
    elif isinstance(value, list):
        assert node.get("type") == "array", path
        for i, child in enumerate(value):
            _walk(schema, node["items"], child, f"{path}[{i}]")
    elif "enum" in node:
        assert value in node["enum"], path


def test_schema_shape_and_the_example() -> None:
    schema = policy_json_schema()
    assert schema["$schema"] == DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["apiVersion", "kind"]
    assert schema["properties"]["apiVersion"]["const"] == "safeguard.dev/v1"
    assert schema["additionalProperties"] is False
    _walk(schema, schema, parse_policy_yaml(example_text()).data, "")


def test_every_property_is_described() -> None:
    schema = policy_json_schema()
    undocumented = []
    for name, definition in schema["$defs"].items():
        for prop, body in definition.get("properties", {}).items():
            if name != "CertificateExtensions" and not body.get("description"):
                undocumented.append(f"{name}.{prop}")
    assert undocumented == []
    text = json.dumps(schema)
    assert "``" not in text and '"title": "Mutatetodigest"' not in text
