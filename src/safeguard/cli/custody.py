"""``safeguard keys``: custody of the signing service's keys (``safeguard.signing.custody``).

* ``keys create NAME --hsm pkcs11:token=...`` generates an ECDSA key pair inside the HSM and
  records it; ``keys create NAME --public-key FILE [--ref URI]`` registers a key made elsewhere.
  Both print the ``ref`` to put in the policy's ``trustRoots.*.keys``.
* ``keys rotate NAME --to NEW [--at TIME]`` makes NEW (on the same HSM token, or ``--hsm``, or
  ``--public-key``) and retires NAME at TIME in its favour.
* ``keys retire NAME [--at TIME]`` and ``keys revoke NAME --at TIME --reason WHY``.
* ``keys list``, ``keys history [NAME]``, ``keys status KEY --at TIME`` (the state a signature
  logged at TIME gets: valid, retired, revoked, flag_for_review).

TIME is RFC 3339 with a zone (``2026-06-30T00:00:00Z``) or ``now``; it is compared with the
transparency log's integrated time of each signature, never with the verifier's clock. Every
change is recorded with its actor (``--actor``, default ``$USER``). The store is the one ``serve``
uses (``--data-dir``/``--database``).
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from safeguard.cli.app import app
from safeguard.cli.output import OUTPUT_OPTION, OutputFormat, console, emit_json, reported
from safeguard.cli.storeopts import DATA_DIR_OPTION, DATABASE_OPTION, open_store
from safeguard.core.errors import InvalidInput
from safeguard.signing.custody import KeyCustody, KeyRecord

keys_app = typer.Typer(
    help="Custody of signing keys: create (in the HSM), rotate, retire, revoke, list.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

ACTOR_OPTION = typer.Option(None, "--actor", help="who makes the change (default: $USER)")
REASON_OPTION = typer.Option(None, "--reason", help="why (kept in the key's history)")


def parse_time(text: str) -> datetime:
    """RFC 3339 with a zone, or ``now``."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not an RFC 3339 time", hint="write e.g. 2026-06-30T00:00:00Z, or now"
        ) from None
    if when.tzinfo is None:
        raise InvalidInput(
            f"{text!r} has no time zone", hint="add Z or an offset, e.g. 2026-06-30T00:00:00Z"
        )
    return when


def actor_of(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:
        return "unknown"


def _show(record: KeyRecord, output: OutputFormat, what: str) -> None:
    if output is OutputFormat.json:
        emit_json(record.to_dict())
        return
    console.print(f"{what} key {record.name} ({record.algorithm})", highlight=False)
    console.print(f"  key id:  {record.key_id}", highlight=False, soft_wrap=True)
    if record.ref:
        console.print(f"  ref:     {record.ref}", highlight=False, soft_wrap=True)
    if record.retired_at:
        console.print(f"  retired: {record.retired_at.isoformat()}", highlight=False)
    if record.successor:
        console.print(f"  successor: {record.successor}", highlight=False)
    if record.revoked_at:
        console.print(
            f"  revoked: {record.revoked_at.isoformat()} ({record.revocation_reason})",
            highlight=False,
        )


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="the key's name (as the policy's keys[].name)"),
    hsm: str | None = typer.Option(
        None, "--hsm", help="pkcs11: URI of the HSM token to generate the key on"
    ),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="register this existing public key (PEM) instead"
    ),
    ref: str | None = typer.Option(None, "--ref", help="with --public-key: where it signs"),
    curve: str = typer.Option("p256", "--curve", help="p256 or p384"),
    actor: str | None = ACTOR_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Generate a key in the HSM (--hsm), or register an existing public key (--public-key)."""
    with reported(output):
        if (hsm is None) == (public_key is None):
            raise InvalidInput("give exactly one of --hsm URI or --public-key FILE")
        with open_store(data_dir, database) as db:
            custody = KeyCustody(db)
            if hsm is not None:
                record = custody.create(name, token_uri=hsm, actor=actor_of(actor), curve=curve)
            else:
                assert public_key is not None
                try:
                    pem = public_key.read_bytes()
                except OSError as exc:
                    raise InvalidInput(f"cannot read {public_key}: {exc.strerror}") from None
                record = custody.register(name, pem, actor=actor_of(actor), ref=ref)
        _show(record, output, "created" if hsm else "registered")


@keys_app.command("rotate")
def rotate(
    name: str = typer.Argument(..., help="the key to retire"),
    to: str = typer.Option(..., "--to", help="name of the successor key"),
    at: str = typer.Option("now", "--at", help="when NAME retires (RFC 3339 or now)"),
    hsm: str | None = typer.Option(None, "--hsm", help="token for the successor"),
    public_key: Path | None = typer.Option(None, "--public-key", help="successor's public key"),
    ref: str | None = typer.Option(None, "--ref", help="with --public-key: where it signs"),
    curve: str = typer.Option("p256", "--curve", help="p256 or p384"),
    reason: str | None = REASON_OPTION,
    actor: str | None = ACTOR_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create a successor key and retire NAME at --at in its favour."""
    with reported(output):
        when = parse_time(at)
        pem = None
        if public_key is not None:
            try:
                pem = public_key.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"cannot read {public_key}: {exc.strerror}") from None
        with open_store(data_dir, database) as db:
            old, new = KeyCustody(db).rotate(
                name,
                successor=to,
                at=when,
                actor=actor_of(actor),
                reason=reason,
                token_uri=hsm,
                public_key=pem,
                successor_ref=ref,
                curve=curve,
            )
        if output is OutputFormat.json:
            emit_json({"retired": old.to_dict(), "successor": new.to_dict()})
            return
        _show(old, output, "rotated")
        _show(new, output, "new")
        console.print(
            f"Point the identities that use {old.name} at {new.name} in the policy before "
            f"{when.isoformat()}.",
            highlight=False,
            soft_wrap=True,
        )


@keys_app.command("retire")
def retire(
    name: str = typer.Argument(...),
    at: str = typer.Option("now", "--at", help="RFC 3339 or now"),
    reason: str | None = REASON_OPTION,
    actor: str | None = ACTOR_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Retire a key: signatures logged before --at stay valid, later ones are refused."""
    with reported(output):
        when = parse_time(at)
        with open_store(data_dir, database) as db:
            record = KeyCustody(db).retire(name, at=when, actor=actor_of(actor), reason=reason)
        _show(record, output, "retired")


@keys_app.command("revoke")
def revoke(
    name: str = typer.Argument(...),
    at: str = typer.Option(..., "--at", help="from when the key is untrusted (RFC 3339 or now)"),
    reason: str = typer.Option(..., "--reason", help="why (required)"),
    actor: str | None = ACTOR_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Revoke a key: signatures logged at or after --at are refused, earlier ones flagged."""
    with reported(output):
        when = parse_time(at)
        with open_store(data_dir, database) as db:
            record = KeyCustody(db).revoke(name, at=when, actor=actor_of(actor), reason=reason)
        _show(record, output, "revoked")


@keys_app.command("list")
def list_keys(
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Every key in custody with its state now."""
    with reported(output), open_store(data_dir, database) as db:
        records = KeyCustody(db).records()
    if output is OutputFormat.json:
        emit_json([r.to_dict() for r in records])
        return
    table = Table("name", "state", "key id", "created", "retired", "revoked", "successor")
    now = datetime.now(UTC)
    for r in records:
        table.add_row(
            r.name,
            r.status_at(now).value,
            r.key_id,
            f"{r.created_at:%Y-%m-%d %H:%M} by {r.created_by}",
            r.retired_at.isoformat() if r.retired_at else "",
            r.revoked_at.isoformat() if r.revoked_at else "",
            r.successor or "",
        )
    console.print(table)


@keys_app.command("history")
def history(
    name: str | None = typer.Argument(None, help="one key (default: all)"),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Who did what to which key, when, and why."""
    with reported(output), open_store(data_dir, database) as db:
        events = KeyCustody(db).history(name)
    if output is OutputFormat.json:
        emit_json(events)
        return
    table = Table("at", "key", "action", "actor", "effective", "reason")
    for e in events:
        table.add_row(
            e["at"], e["key"], e["action"], e["actor"], e["effectiveAt"] or "", e["reason"] or ""
        )
    console.print(table)


@keys_app.command("status")
def status(
    key: str = typer.Argument(..., help="a key name or key id"),
    at: str = typer.Option("now", "--at", help="the log time to judge (RFC 3339 or now)"),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """The state a signature by KEY logged at --at gets: valid, retired, revoked,
    flag_for_review (or unknown)."""
    with reported(output):
        when = parse_time(at)
        with open_store(data_dir, database) as db:
            custody = KeyCustody(db)
            records = [r for r in custody.records() if key in (r.name, r.key_id)]
            key_id = records[0].key_id if records else key
            state = custody.key_status_at(key_id, when)
    if output is OutputFormat.json:
        emit_json({"key": key, "keyId": key_id, "at": when.isoformat(), "state": state.value})
        return
    console.print(f"{key} at {when.isoformat()}: {state.value}", highlight=False)
