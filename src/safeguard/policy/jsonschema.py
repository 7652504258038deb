"""The policy's JSON Schema (draft 2020-12), generated from the pydantic models, for editors.

``docs/safeguard.schema.json`` is this output (``safeguard policy schema --out ...``); a test
keeps it current. Editors that run yaml-language-server (VS Code's YAML extension, Neovim,
JetBrains) use it when the policy starts with the modeline
``# yaml-language-server: $schema=<path or URL of safeguard.schema.json>``.

Descriptions come from the models' docstrings, with reStructuredText literals (````x````) turned
into Markdown ones (```x```), which is what editors render. Properties carry no generated titles
(``Mutatetodigest`` helps nobody); models keep their names as titles.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from safeguard.policy.schema import Policy

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID: Final = "https://safeguard.dev/schemas/policy/v1/safeguard.schema.json"


class _Generator(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def enum_schema(self, schema: core_schema.EnumSchema) -> dict[str, Any]:
        out = super().enum_schema(schema)
        out.pop("description", None)  # the StrEnum's own docstring is Python's, not ours
        return out


def _markdown(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: " ".join(v.replace("``", "`").split())
            if k == "description" and isinstance(v, str)
            else _markdown(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_markdown(v) for v in node]
    return node


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``safeguard.yaml`` as written (camelCase fields, input defaults)."""
    body = Policy.model_json_schema(by_alias=True, mode="validation", schema_generator=_Generator)
    return {"$schema": DIALECT, "$id": SCHEMA_ID, **_markdown(body)}


def policy_json_schema_text() -> str:
    """The schema as the exported file holds it: two-space indentation, sorted keys, newline."""
    return json.dumps(policy_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
