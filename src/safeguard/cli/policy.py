"""``safeguard policy``: validate, apply and inspect the versioned policy (``safeguard.yaml``).

* ``validate FILE``: check a file without storing it; every problem is listed with its path and
  line (exit 2);
* ``apply FILE``: validate and store it as the next version (``--author``, default ``$USER``;
  ``--message``); identical content stores nothing and says so;
* ``show`` (``--version N``; ``--output text|json|yaml``), ``history``, ``diff A B``,
  ``rollback N``: read the versions kept in the store (``--data-dir``/``--database``, as
  ``safeguard serve``);
* ``schema``: the JSON Schema of the file, for editors (``--out FILE``).

Exit codes: 0 ok, 2 invalid policy or input, 3 database unreachable.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from safeguard.cli.app import app
from safeguard.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    console,
    emit_json,
    err_console,
    reported,
)
from safeguard.cli.storeopts import DATA_DIR_OPTION, DATABASE_OPTION, open_store
from safeguard.core.errors import EXIT_USAGE, InvalidInput
from safeguard.policy.diff import PolicyDiff
from safeguard.policy.errors import PolicyInvalid
from safeguard.policy.load import LoadedPolicy, load_policy
from safeguard.policy.schema import Policy
from safeguard.policy.store import PolicyStore, PolicyVersion, PolicyVersionInfo

policy_app = typer.Typer(
    help="The versioned policy: validate, apply, show, history, diff, rollback, schema.",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")


class ShowFormat(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"


FILE_ARGUMENT = typer.Argument(..., help="the policy file (safeguard.yaml)")
AUTHOR_OPTION = typer.Option(None, "--author", help="who applies it (default: $USER)")
MESSAGE_OPTION = typer.Option(None, "--message", "-m", help="why (kept with the version)")


def _say(text: RenderableType = "", style: str | None = None) -> None:
    console.print(text, style=style, highlight=False, soft_wrap=True)


def _warn(text: str) -> None:
    err_console.print(text, highlight=False, soft_wrap=True)


@contextmanager
def _reported(output: OutputFormat) -> Iterator[None]:
    """``reported``, plus every problem of an invalid policy listed with its line."""
    with reported(output):
        try:
            yield
        except PolicyInvalid as exc:
            if output is OutputFormat.json:
                raise
            _warn(f"[bold red]error[/] {escape(f'[{exc.code}] {exc.message}')}")
            for issue in exc.issues:
                _warn(f"  [bold]{escape(issue.where)}[/]: {escape(issue.message)}")
                if issue.hint:
                    _warn(f"      [yellow]hint:[/] {escape(issue.hint)}")
            raise typer.Exit(EXIT_USAGE) from None


def _author(author: str | None) -> str:
    if author:
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise InvalidInput(
            "cannot tell who you are", hint="pass --author NAME (or set $USER)"
        ) from None


def _summary(policy: Policy) -> dict[str, int]:
    return {
        "trustRoots": len(policy.trust_roots),
        "identities": len(policy.identities),
        "registries": len(policy.registries),
        "verification": len(policy.verification),
    }


_NOUNS = {
    "trustRoots": ("trust root", "trust roots"),
    "identities": ("identity", "identities"),
    "registries": ("registry rule", "registry rules"),
    "verification": ("verification rule", "verification rules"),
}


def _summary_text(policy: Policy) -> str:
    parts = []
    for key, count in _summary(policy).items():
        one, many = _NOUNS[key]
        parts.append(f"{count} {one if count == 1 else many}")
    return ", ".join(parts)


def _print_diff(diff: PolicyDiff) -> None:
    if not diff.changes and not diff.text:
        _say("No differences.")
        return
    for change in diff.changes:
        _say(f"  {escape(str(change))}")
    if diff.text:
        if diff.changes:
            _say()
        sys.stdout.write(diff.text)
        sys.stdout.flush()


def _version_dict(version: PolicyVersionInfo) -> dict[str, Any]:
    return version.to_dict()


@policy_app.command("validate")
def validate(file: Path = FILE_ARGUMENT, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Check a policy file; list every problem with its path and line (exit 2 when invalid)."""
    with _reported(output):
        loaded = load_policy(file)
    if output is OutputFormat.json:
        emit_json(
            {
                "valid": True,
                "source": str(file),
                "sha256": loaded.sha256,
                "summary": _summary(loaded.policy),
                "files": sorted(loaded.files),
            }
        )
    else:
        _say(
            f"{escape(str(file))} is a valid policy: {_summary_text(loaded.policy)}",
        )


@policy_app.command("apply")
def apply(
    file: Path = FILE_ARGUMENT,
    author: str | None = AUTHOR_OPTION,
    message: str | None = MESSAGE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Validate a policy file and store it as the next version (the active one)."""
    with _reported(output):
        who = _author(author)
        loaded: LoadedPolicy = load_policy(file)
        with open_store(data_dir, database) as db:
            store = PolicyStore(db)
            version = store.apply(loaded, who, message, source=str(file))
            diff = (
                store.diff(version.number - 1, version.number)
                if version.new and version.number > 1
                else None
            )
    if output is OutputFormat.json:
        body = {**_version_dict(version), "new": version.new}
        body["changes"] = [c.to_dict() for c in diff.changes] if diff else []
        emit_json(body)
        return
    if not version.new:
        _say(
            f"No change: version {version.number} already has this content "
            f"(sha256 {version.sha256[:12]}).",
        )
        return
    _say(
        f"Applied {escape(str(file))} as policy version {version.number} "
        f"(author {escape(version.author)}, sha256 {version.sha256[:12]}).",
    )
    if diff is not None:
        for change in diff.changes:
            _say(f"  {escape(str(change))}")


def _show_text(version: PolicyVersion) -> None:
    _say(f"Policy version {version.number}", style="bold")
    _say(f"  applied  {version.created_at.isoformat()} by {escape(version.author)}")
    if version.message:
        _say(f"  message  {escape(version.message)}")
    if version.rollback_of is not None:
        _say(f"  restores version {version.rollback_of}")
    if version.source:
        _say(f"  source   {escape(version.source)}")
    _say(f"  sha256   {version.sha256}")
    _say(f"  contains {_summary_text(version.policy)}")
    for path in sorted(version.files):
        _say(f"  file     {escape(path)}")
    _say()
    sys.stdout.write(version.text if version.text.endswith("\n") else version.text + "\n")
    sys.stdout.flush()


@policy_app.command("show")
def show(
    version_number: int | None = typer.Option(
        None, "--version", min=1, help="version number (default: the active one)"
    ),
    output: ShowFormat = typer.Option(
        ShowFormat.text, "--output", "-o", help="text, json (normalised) or yaml (as applied)"
    ),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
) -> None:
    """Print a policy version: as applied (yaml), normalised (json), or with its metadata."""
    errors = OutputFormat.json if output is ShowFormat.json else OutputFormat.text
    with _reported(errors), open_store(data_dir, database) as db:
        store = PolicyStore(db)
        version = store.get(version_number) if version_number else store.require_active()
        version.policy  # noqa: B018 - parse inside the error handler
    if output is ShowFormat.yaml:
        sys.stdout.write(version.text)
        sys.stdout.flush()
    elif output is ShowFormat.json:
        emit_json(
            {
                **_version_dict(version),
                "policy": version.normalized,
                "files": version.file_digests(),
            }
        )
    else:
        _show_text(version)


@policy_app.command("history")
def history(
    limit: int | None = typer.Option(None, "--limit", min=1, help="newest N versions only"),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List the policy versions, newest first."""
    with _reported(output), open_store(data_dir, database) as db:
        versions = PolicyStore(db).history(limit)
    if output is OutputFormat.json:
        emit_json([_version_dict(v) for v in versions])
        return
    if not versions:
        _say("No policy has been applied yet.")
        return
    table = Table("version", "applied", "author", "message", box=None)
    for i, v in enumerate(versions):
        marker = " (active)" if i == 0 else ""
        note = v.message or ""
        if v.rollback_of is not None and not note:
            note = f"rollback to version {v.rollback_of}"
        table.add_row(
            f"{v.number}{marker}",
            v.created_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
            escape(v.author),
            escape(note),
        )
    _say(table)


@policy_app.command("diff")
def diff(
    a: int = typer.Argument(..., min=1, help="from version"),
    b: int = typer.Argument(..., min=1, help="to version"),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Show what changed from version A to version B: a summary, then the unified diff."""
    with _reported(output), open_store(data_dir, database) as db:
        result = PolicyStore(db).diff(a, b)
    if output is OutputFormat.json:
        emit_json(result.to_dict())
    else:
        _print_diff(result)


@policy_app.command("rollback")
def rollback(
    number: int = typer.Argument(..., min=1, help="the version to restore"),
    author: str | None = AUTHOR_OPTION,
    message: str | None = MESSAGE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Make version N active again, as a new version (its text and files, re-validated)."""
    with _reported(output):
        who = _author(author)
        with open_store(data_dir, database) as db:
            version = PolicyStore(db).rollback(number, who, message)
    if output is OutputFormat.json:
        emit_json({**_version_dict(version), "new": version.new})
    elif version.new:
        _say(f"Restored version {number} as policy version {version.number}.")
    else:
        _say(
            f"No change: the active version {version.number} already has version {number}'s "
            "content.",
        )


@policy_app.command("schema")
def schema(
    out: Path | None = typer.Option(None, "--out", help="write here (default: standard output)"),
) -> None:
    """Print the policy's JSON Schema (draft 2020-12), for editors and CI linters."""
    from safeguard.policy.jsonschema import policy_json_schema_text

    text = policy_json_schema_text()
    if out is None:
        sys.stdout.write(text)
        return
    with reported():
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {out}: {exc.strerror or exc}") from None
    _say(f"JSON Schema written to {escape(str(out))}")
