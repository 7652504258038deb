"""``safeguard policy`` through the CLI: validate, apply, show, history, diff, rollback, schema,
with their outputs and exit codes (0 ok, 2 invalid policy, 3 database unreachable)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.policy.jsonschema import policy_json_schema_text
from tests.fixtures.builtin import fresh_postgres_database
from tests.fixtures.policy import policy_dir, variant, write_policy

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    return result


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return policy_dir(tmp_path)


@pytest.fixture
def store_args(tmp_path: Path) -> list[str]:
    return ["--data-dir", str(tmp_path / "data")]


def test_validate_good_and_bad(base: Path) -> None:
    result = run("policy", "validate", str(base / "example.yaml"))
    assert result.exit_code == 0
    assert "is a valid policy: 2 trust roots, 3 identities, 1 registry rule" in result.stdout
    result = run("policy", "validate", str(base / "example.yaml"), "--output", "json")
    body = json.loads(result.stdout)
    assert body["valid"] is True and body["summary"]["identities"] == 3
    assert "trust/tlog.pub" in body["files"]

    bad = write_policy(
        base,
        variant(
            ("unsignedPush: reject", "unsginedPush: reject"),
            ("ref: refs/heads/main", "ref: main"),
            ("signers: [{identity: team-a-release}]", "signers: [{identity: team-b}]"),
        ),
    )
    result = run("policy", "validate", str(bad))
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"error [POLICY_INVALID] {bad} is not a valid policy (3 problems)"
    assert "  identities[0].oidc.ref (line 28, column 12): 'main' is not a full git ref" in lines
    assert "  registries[0].unsginedPush (line 45, column 5): unknown field 'unsginedPush'" in lines
    assert "      hint: did you mean 'unsignedPush'?" in lines
    assert any(line.startswith("  verification[0].signers[0].identity (line 54") for line in lines)

    result = run("policy", "validate", str(bad), "-o", "json")
    assert result.exit_code == 2
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "POLICY_INVALID" and len(error["detail"]) == 3
    assert error["detail"][0] == {
        "path": "identities[0].oidc.ref",
        "line": 28,
        "column": 12,
        "message": "'main' is not a full git ref",
        "hint": "expected refs/heads/... or refs/tags/... (e.g. refs/heads/main, refs/tags/v*)",
    }


def test_validate_hostile_files(base: Path) -> None:
    cases = {
        "list.yaml": ("- a\n- b\n", "must be a mapping, not a list"),
        "tabs.yaml": ("apiVersion: safeguard.dev/v1\n\tkind: Policy\n", "tab"),
        "dup.yaml": ("apiVersion: safeguard.dev/v1\nkind: Policy\nkind: Policy\n", "duplicate key"),
    }
    for name, (text, expected) in cases.items():
        result = run("policy", "validate", str(write_policy(base, text, name)))
        assert result.exit_code == 2 and expected in result.stderr, result.stderr
    big = base / "big.yaml"
    big.write_bytes(b"a: " + b"x" * (10 * 1024 * 1024))
    result = run("policy", "validate", str(big))
    assert result.exit_code == 2 and "10.0 MiB" in result.stderr
    result = run("policy", "validate", str(base / "missing.yaml"))
    assert result.exit_code == 2 and "no policy file" in result.stderr


def test_apply_show_history_diff_rollback(base: Path, store_args: list[str]) -> None:
    example = str(base / "example.yaml")
    result = run("policy", "apply", example, "--author", "alice", "-m", "first", *store_args)
    assert result.exit_code == 0, result.stderr
    assert f"Applied {example} as policy version 1 (author alice" in result.stdout

    result = run("policy", "apply", example, *store_args, env={"USER": "bob"})
    assert (
        result.exit_code == 0 and "No change: version 1 already has this content" in result.stdout
    )

    changed = write_policy(base, variant(("graceSeconds: 60", "graceSeconds: 90")))
    result = run("policy", "apply", str(changed), "-o", "json", *store_args, env={"USER": "bob"})
    body = json.loads(result.stdout)
    assert (body["version"], body["new"], body["author"]) == (2, True, "bob")
    assert body["changes"] == [
        {
            "action": "changed",
            "section": "registries",
            "name": "team-a/**",
            "fields": ["graceSeconds"],
        }
    ]

    result = run("policy", "show", "-o", "yaml", *store_args)
    assert result.stdout == changed.read_text()
    result = run("policy", "show", "--version", "1", "-o", "json", *store_args)
    body = json.loads(result.stdout)
    assert body["version"] == 1 and body["message"] == "first"
    assert body["policy"]["registries"][0]["graceSeconds"] == 60
    assert body["policy"]["admission"]["mutateToDigest"] is True
    assert set(body["files"]) >= {"trust/tlog.pub"}
    result = run("policy", "show", *store_args)
    assert result.stdout.startswith("Policy version 2\n")
    assert "graceSeconds: 90" in result.stdout and "file     trust/tlog.pub" in result.stdout

    result = run("policy", "history", *store_args)
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["2", "1"] and rows[0][1] == "(active)"
    assert rows[0][-1] == "bob" and rows[1][-1] == "first"
    history = json.loads(run("policy", "history", "-o", "json", *store_args).stdout)
    assert [v["version"] for v in history] == [2, 1]

    result = run("policy", "diff", "1", "2", *store_args)
    assert result.stdout.startswith("  changed registries team-a/**: graceSeconds\n")
    assert "-    graceSeconds: 60\n+    graceSeconds: 90\n" in result.stdout
    body = json.loads(run("policy", "diff", "1", "2", "-o", "json", *store_args).stdout)
    assert body["from"] == 1 and body["to"] == 2 and body["diff"].startswith("--- policy v1")
    assert run("policy", "diff", "2", "2", *store_args).stdout == "No differences.\n"

    result = run("policy", "rollback", "1", "--author", "carol", *store_args)
    assert result.exit_code == 0 and "Restored version 1 as policy version 3." in result.stdout
    result = run("policy", "rollback", "1", "--author", "carol", *store_args)
    assert "No change" in result.stdout
    body = json.loads(run("policy", "show", "-o", "json", *store_args).stdout)
    assert body["version"] == 3 and body["rollbackOf"] == 1 and body["author"] == "carol"


def test_apply_refuses_invalid_policies(base: Path, store_args: list[str]) -> None:
    bad = write_policy(base, variant(("mode: enforce", "mode: strict")))
    result = run("policy", "apply", str(bad), "--author", "a", *store_args)
    assert result.exit_code == 2 and "verification[0].mode (line 53" in result.stderr
    result = run("policy", "history", *store_args)
    assert result.stdout == "No policy has been applied yet.\n"


def test_missing_versions(store_args: list[str]) -> None:
    result = run("policy", "show", *store_args)
    assert result.exit_code == 2 and "POLICY_NOT_APPLIED" in result.stderr
    result = run("policy", "show", "--version", "4", *store_args)
    assert result.exit_code == 2 and "there is no policy version 4" in result.stderr
    result = run("policy", "diff", "1", "2", "-o", "json", *store_args)
    assert json.loads(result.stderr)["error"]["code"] == "POLICY_VERSION_NOT_FOUND"
    result = run("policy", "rollback", "1", "--author", "a", *store_args)
    assert result.exit_code == 2


def test_environment_selects_the_store(base: Path, tmp_path: Path) -> None:
    env = {"SAFEGUARD_DATA_DIR": str(tmp_path / "envdata"), "USER": "dora"}
    result = run("policy", "apply", str(base / "example.yaml"), env=env)
    assert result.exit_code == 0 and (tmp_path / "envdata" / "safeguard.db").exists()
    result = run("policy", "history", "-o", "json", env=env)
    assert json.loads(result.stdout)[0]["author"] == "dora"


def test_unreachable_database_exits_3(base: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = run("policy", "apply", str(base / "example.yaml"), "--database", url, "--author", "a")
    assert result.exit_code == 3 and "UNREACHABLE" in result.stderr
    result = run("policy", "history", env={"SAFEGUARD_DATABASE_URL": url})
    assert result.exit_code == 3
    # an invalid policy is reported before the store is touched
    bad = write_policy(base, "- a\n")
    assert run("policy", "apply", str(bad), "--database", url, "--author", "a").exit_code == 2


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_url) as url:
        yield url


def test_cli_on_postgresql(base: Path, fresh_postgres: str) -> None:
    args = ["--database", fresh_postgres]
    assert run("policy", "apply", str(base / "example.yaml"), "--author", "a", *args).exit_code == 0
    changed = write_policy(base, variant(("claimWindowDays: 30", "claimWindowDays: 10")))
    assert run("policy", "apply", str(changed), "--author", "b", *args).exit_code == 0
    result = run("policy", "diff", "1", "2", *args)
    assert "changed cleanup cleanup: claimWindowDays" in result.stdout
    assert "Restored version 1" in run("policy", "rollback", "1", "--author", "c", *args).stdout
    history = json.loads(run("policy", "history", "-o", "json", *args).stdout)
    assert [(v["version"], v["author"]) for v in history] == [(3, "c"), (2, "b"), (1, "a")]


def test_schema_command(tmp_path: Path) -> None:
    result = run("policy", "schema")
    assert result.exit_code == 0 and result.stdout == policy_json_schema_text()
    out = tmp_path / "schema.json"
    result = run("policy", "schema", "--out", str(out))
    assert result.exit_code == 0 and out.read_text() == policy_json_schema_text()
    result = run("policy", "schema", "--out", str(tmp_path / "no" / "such" / "dir.json"))
    assert result.exit_code == 2 and "cannot write" in result.stderr
