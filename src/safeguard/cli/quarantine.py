"""``safeguard quarantine``: move artifacts out of their repositories, safely, through a gateway.

* ``quarantine move HOST/REPO[:TAG|@DIGEST] --until DATE --reason TEXT [--namespace NS]``:
  copy the artifact with its referrers to ``NS/REPO`` (default: the rule's namespace, else
  ``quarantine``), check the copy by digest, then delete the original; until DATE pulls of the
  old name are served from quarantine with a ``Warning`` header (and logged);
* ``quarantine resume HOST``: finish moves and purges a crash interrupted (the gateway also does
  this when it starts);
* ``quarantine purge HOST``: delete quarantined artifacts whose deadline has passed;
* ``quarantine list HOST``: the journal.

Every step is journaled by the gateway (``safeguard.gateway.quarantine``); all four need the
admin role (``safeguard.gateway.adminclient``).
"""

from __future__ import annotations

from typing import Any

import typer

from safeguard.cli.app import app
from safeguard.cli.gateway import USERNAME_OPTION
from safeguard.cli.output import (
    INSECURE_OPTION,
    OUTPUT_OPTION,
    OutputFormat,
    console,
    emit_json,
    reported,
)
from safeguard.core.errors import InvalidInput
from safeguard.core.reference import Reference

quarantine = typer.Typer(
    help="Quarantine: move artifacts aside, serve them with a warning, purge them later.",
    no_args_is_help=True,
)
app.add_typer(quarantine, name="quarantine")


def parse_artifact(text: str) -> tuple[str, str, str]:
    """``HOST/REPO[:TAG|@DIGEST]`` as (host, repository, reference)."""
    ref = Reference.parse(text)
    if ref.registry not in text:
        raise InvalidInput(f"{text!r} does not name the gateway", hint="write HOST[:PORT]/REPO:TAG")
    if ref.digest is not None:
        return ref.registry, ref.repository, str(ref.digest)
    assert ref.tag is not None
    return ref.registry, ref.repository, ref.tag


def _entry_line(entry: dict[str, Any]) -> str:
    tag = f":{entry['sourceTag']}" if entry.get("sourceTag") else ""
    served = "served under its old name" if entry["served"] else "not served"
    error = f" (last error: {entry['error']})" if entry.get("error") else ""
    return (
        f"#{entry['id']} {entry['source']}{tag} -> {entry['target']} [{entry['state']}] "
        f"until {entry['until']}, {served}; {entry['reason']} (by {entry['actor']}){error}"
    )


def _print(entries: list[dict[str, Any]], output: OutputFormat, key: str, empty: str) -> None:
    if output is OutputFormat.json:
        emit_json({key: entries})
        return
    if not entries:
        console.print(empty, highlight=False)
    for entry in entries:
        console.print(_entry_line(entry), highlight=False, soft_wrap=True)


@quarantine.command("move")
def move(
    artifact: str = typer.Argument(..., help="HOST/REPO:TAG or HOST/REPO@DIGEST"),
    until: str = typer.Option(..., "--until", help="serve the old name until (YYYY-MM-DD)"),
    reason: str = typer.Option(..., "--reason", help="why (logged)"),
    namespace: str | None = typer.Option(None, "--namespace", help="default: the rule's"),
    username: str | None = USERNAME_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Move an artifact and its referrers into the quarantine namespace (admin)."""
    from safeguard.gateway.admin import parse_until
    from safeguard.gateway.adminclient import call

    with reported(output):
        host, repository, reference = parse_artifact(artifact)
        deadline = parse_until(until)
        body: dict[str, Any] = {
            "repository": repository,
            "reference": reference,
            "until": deadline.isoformat(),
            "reason": reason,
        }
        if namespace:
            body["namespace"] = namespace
        doc = call(
            host,
            "POST",
            "quarantine/move",
            body=body,
            username=username,
            allow_insecure=allow_insecure_registry,
        )
    if output is OutputFormat.json:
        emit_json(doc)
    else:
        console.print("moved: " + _entry_line(doc), highlight=False, soft_wrap=True)


def _simple(host: str, path: str, method: str, key: str, username: str | None,
            output: OutputFormat, insecure: bool, empty: str) -> None:  # fmt: skip
    from safeguard.gateway.adminclient import call

    with reported(output):
        doc = call(host, method, path, username=username, allow_insecure=insecure)
    _print(list(doc.get(key, [])), output, key, empty)


@quarantine.command("resume")
def resume(
    host: str = typer.Argument(..., help="the gateway, HOST[:PORT]"),
    username: str | None = USERNAME_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Finish quarantine moves and purges that were interrupted (admin)."""
    _simple(host, "quarantine/resume", "POST", "resumed", username, output,
            allow_insecure_registry, "nothing to resume")  # fmt: skip


@quarantine.command("purge")
def purge(
    host: str = typer.Argument(..., help="the gateway, HOST[:PORT]"),
    username: str | None = USERNAME_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Delete quarantined artifacts whose deadline has passed (admin)."""
    _simple(host, "quarantine/purge", "POST", "purged", username, output,
            allow_insecure_registry, "nothing is past its deadline")  # fmt: skip


@quarantine.command("list")
def list_entries(
    host: str = typer.Argument(..., help="the gateway, HOST[:PORT]"),
    username: str | None = USERNAME_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """The quarantine journal (admin)."""
    _simple(host, "quarantine", "GET", "entries", username, output,
            allow_insecure_registry, "the quarantine is empty")  # fmt: skip
