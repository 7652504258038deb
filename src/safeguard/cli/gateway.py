"""``safeguard gateway``: admin actions on a running gateway, and its users file.

* ``gateway retag HOST/REPO:TAG --to DIGEST --reason TEXT``: point a tag at a digest even when
  it is immutable (``immutableTags``, or it points at a signed digest);
* ``gateway untag HOST/REPO:TAG --reason TEXT``: remove a tag the same way;
* ``gateway audit HOST [REPO]``: the gateway's recent decisions;
* ``gateway hash-password``: a ``passwordHash`` for the users file (password on stdin).

Admin actions need the admin role: ``--username`` with ``SAFEGUARD_GATEWAY_PASSWORD``, or the
credentials ``skopeo login HOST`` stored (``safeguard.gateway.adminclient``). Each is logged
by the gateway with the actor, the old and new digests and the reason.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from safeguard.cli.app import app
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

gateway = typer.Typer(help="Admin actions on a Safeguard gateway.", no_args_is_help=True)
app.add_typer(gateway, name="gateway")

REASON_OPTION = typer.Option(..., "--reason", help="why (logged with the action)")
USERNAME_OPTION = typer.Option(
    None, "--username", "-u", help="admin user (password in SAFEGUARD_GATEWAY_PASSWORD)"
)


def parse_tagged(text: str) -> Reference:
    """``HOST/REPO:TAG``: the gateway host is required, and so is a tag."""
    ref = Reference.parse(text)
    if ref.registry in ("docker.io",) or ref.registry not in text:
        raise InvalidInput(f"{text!r} does not name the gateway", hint="write HOST[:PORT]/REPO:TAG")
    if ref.digest is not None or ref.tag is None or not text.endswith(f":{ref.tag}"):
        raise InvalidInput(f"{text!r} names no tag", hint="write HOST[:PORT]/REPO:TAG")
    return ref


def _show(doc: dict[str, Any], output: OutputFormat, verb: str) -> None:
    if output is OutputFormat.json:
        emit_json(doc)
        return
    console.print(
        f"{verb} {doc['repository']}:{doc['tag']}: {doc.get('oldDigest') or '(none)'} -> "
        f"{doc.get('newDigest') or '(removed)'} by {doc['actor']} ({doc['reason']})",
        highlight=False,
        soft_wrap=True,
    )


@gateway.command("retag")
def retag(
    reference: str = typer.Argument(..., help="HOST/REPO:TAG"),
    to: str = typer.Option(..., "--to", help="the digest the tag points at afterwards"),
    reason: str = REASON_OPTION,
    username: str | None = USERNAME_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Move a tag, even an immutable one (admin)."""
    from safeguard.core.digest import Digest
    from safeguard.gateway.adminclient import call

    with reported(output):
        ref = parse_tagged(reference)
        digest = Digest.parse(to)
        doc = call(
            ref.registry,
            "POST",
            "retag",
            body={
                "repository": ref.repository,
                "tag": ref.tag,
                "digest": str(digest),
                "reason": reason,
            },
            username=username,
            allow_insecure=allow_insecure_registry,
        )
    _show(doc, output, "retagged")


@gateway.command("untag")
def untag(
    reference: str = typer.Argument(..., help="HOST/REPO:TAG"),
    reason: str = REASON_OPTION,
    username: str | None = USERNAME_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Remove a tag, even an immutable one (admin)."""
    from safeguard.gateway.adminclient import call

    with reported(output):
        ref = parse_tagged(reference)
        doc = call(
            ref.registry,
            "POST",
            "untag",
            body={"repository": ref.repository, "tag": ref.tag, "reason": reason},
            username=username,
            allow_insecure=allow_insecure_registry,
        )
    _show(doc, output, "untagged")


@gateway.command("audit")
def audit(
    host: str = typer.Argument(..., help="the gateway, HOST[:PORT]"),
    repository: str | None = typer.Argument(None, help="only this repository"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    username: str | None = USERNAME_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """The gateway's recent push-policy and admin decisions (admin)."""
    from safeguard.gateway.adminclient import call

    params = {"limit": str(limit)}
    if repository:
        params["repository"] = repository
    with reported(output):
        doc = call(
            host,
            "GET",
            "audit",
            params=params,
            username=username,
            allow_insecure=allow_insecure_registry,
        )
    if output is OutputFormat.json:
        emit_json(doc)
        return
    for event in doc.get("events", []):
        where = event["repository"] + (f":{event['tag']}" if event.get("tag") else "")
        console.print(
            f"{event['at']}  {event['action']:<10} {event['decision']:<10} {where}  "
            f"{event.get('digest') or ''}  by {event['identity']}@{event['client']}: "
            f"{event['reason']}",
            highlight=False,
            soft_wrap=True,
        )


@gateway.command("hash-password")
def hash_password_command() -> None:
    """Read a password on stdin; print its passwordHash for the users file."""
    from safeguard.gateway.auth import hash_password

    with reported():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidInput("no password on stdin", hint="echo -n SECRET | safeguard ...")
    typer.echo(hash_password(password))
