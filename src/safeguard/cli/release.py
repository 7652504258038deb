"""``safeguard release``: the release-engineer flow (``safeguard.signing.release``).

* ``release enroll --name jdoe [--identity NAME]`` creates the engineer's TOTP secret (RFC 6238:
  SHA-1, 30 s, 6 digits) for a ``kind: release-engineer`` identity of the active policy, stores it
  encrypted, and prints the ``otpauth://`` URI once (add it to an authenticator app);
* ``release sign --token pkcs11:… --ticket REL-123 [--totp CODE] IMAGE`` signs IMAGE with the key
  on the hardware token: the PIN comes from the URI's ``pin-source``, ``COSIGN_PKCS11_PIN`` or a
  prompt; the TOTP code from ``--totp`` or a prompt. The entries go to the node's transparency
  log (in-process over the store, with the data directory's log key, or ``--tlog-url``); the
  ticket and the engineer's name are signed into the statement; the use is audited;
* ``release uses [--all]`` lists each use (``--all``: refusals too).

The store is the one ``serve`` uses (``--data-dir``/``--database``).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path

import typer
from rich.table import Table

from safeguard.cli.app import app
from safeguard.cli.custody import actor_of
from safeguard.cli.output import (
    INSECURE_OPTION,
    OUTPUT_OPTION,
    OutputFormat,
    console,
    emit_json,
    err_console,
    reported,
)
from safeguard.cli.sign import LEGACY_OPTION, TLOG_URL_OPTION, report_signed
from safeguard.cli.storeopts import DATA_DIR_OPTION, DATABASE_OPTION, open_store
from safeguard.core.errors import InvalidInput
from safeguard.keys.base import Signer
from safeguard.keys.pkcs11 import PIN_ENV
from safeguard.keys.pkcs11_uri import parse_pkcs11_uri
from safeguard.policy import PolicyStore
from safeguard.signing.audit import AuditLog
from safeguard.signing.material import InProcessLog, LogSink, RemoteLog
from safeguard.signing.release import (
    ReleaseEnrolments,
    release_identity_for_name,
    release_sign,
    secrets_key,
)

release_app = typer.Typer(
    help="Release engineers: enrol a TOTP second factor, sign with a hardware token, list uses.",
    no_args_is_help=True,
)
app.add_typer(release_app, name="release")


class PinRequired(InvalidInput):
    code = "RELEASE_PIN_REQUIRED"


@release_app.command("enroll")
def enroll(
    name: str = typer.Option(..., "--name", help="the engineer, e.g. jdoe"),
    identity: str | None = typer.Option(
        None,
        "--identity",
        help="the release-engineer identity (default: NAME or release-engineer-NAME)",
    ),
    force: bool = typer.Option(False, "--force", help="replace an existing enrolment"),
    actor: str | None = typer.Option(None, "--actor", help="who enrols (default: $USER)"),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create NAME's TOTP secret and print its otpauth:// URI, once."""
    with reported(output), open_store(data_dir, database) as db:
        policy = PolicyStore(db).require_active().policy
        found = release_identity_for_name(policy, name, identity)
        key = secrets_key(data_dir, create=True)
        enrolment = ReleaseEnrolments(db, key).enrol(
            name, found.name, actor=actor_of(actor), replace=force
        )
    if output is OutputFormat.json:
        emit_json({"name": name, "identity": found.name, "otpauthUri": enrolment.uri})
        return
    console.print(f"Enrolled {name} for identity {found.name}.", highlight=False)
    console.print("Add this to an authenticator app now; it is not shown again:", highlight=False)
    console.print(enrolment.uri, highlight=False, soft_wrap=True)


def _pin_for(uri: str) -> str | None:
    parsed = parse_pkcs11_uri(uri)
    if parsed.pin_source is not None or parsed.pin_value is not None or os.environ.get(PIN_ENV):
        return None  # the signer reads it from there
    if sys.stdin.isatty():
        return getpass.getpass(f"PIN of token {parsed.token or '?'}: ")
    raise PinRequired(
        "the hardware token needs its PIN",
        hint=f"add pin-source=file:/path to --token, set {PIN_ENV}, or run on a terminal",
    )


def open_token(uri: str, module_path: str | None) -> Signer:
    from safeguard.keys.pkcs11 import PKCS11Signer

    return PKCS11Signer(uri, pin=_pin_for(uri), module_path=module_path)


@release_app.command("sign")
def sign(
    image: str = typer.Argument(..., help="REGISTRY/REPO@DIGEST (or :TAG)"),
    token: str = typer.Option(..., "--token", help="pkcs11: URI of your hardware token's key"),
    ticket: str = typer.Option(..., "--ticket", help="the change ticket, e.g. REL-123"),
    totp_code: str | None = typer.Option(None, "--totp", help="the current TOTP code"),
    tlog_url: str | None = TLOG_URL_OPTION,
    tlog_key: str | None = typer.Option(
        None, "--tlog-key", envvar="SAFEGUARD_TLOG_KEY", help="the node's log key (in-process)"
    ),
    legacy_tag: bool = LEGACY_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Sign IMAGE as a release engineer: hardware token + PIN + TOTP, ticket logged."""
    with reported(output):
        if not token.lower().startswith("pkcs11:"):
            raise InvalidInput("--token must be a pkcs11: URI of the hardware token's key")
        code = totp_code
        if code is None and sys.stdin.isatty():
            code = typer.prompt("TOTP code")
        with open_store(data_dir, database) as db:
            version = PolicyStore(db).require_active()
            enrolments = ReleaseEnrolments(db, lambda: secrets_key(data_dir))
            audit = AuditLog(db)
            closers = [audit.close]
            log: LogSink
            if tlog_url is not None:
                from safeguard.tlog.client import RekorClient

                rekor = RekorClient(tlog_url)
                closers.append(rekor.close)
                log = RemoteLog(rekor)
            else:
                from safeguard.tlog.logkey import load_or_create
                from safeguard.tlog.service import TransparencyLog

                tlog = TransparencyLog(db, load_or_create(tlog_key, data_dir))
                closers.append(tlog.close)
                log = InProcessLog(tlog)
            try:
                done = asyncio.run(
                    release_sign(
                        image,
                        policy=version.policy,
                        read=version.read,
                        token_uri=token,
                        ticket=ticket,
                        code=code,
                        open_token=open_token,
                        enrolments=enrolments,
                        audit=audit,
                        log=log,
                        insecure=allow_insecure_registry,
                        legacy=legacy_tag,
                    )
                )
            finally:
                for close in closers:
                    close()
        if output is OutputFormat.json:
            emit_json(done.as_dict())
            return
        report_signed(done.result, output, "release signature")
        err_console.print(
            f"signed as {done.identity} by {done.engineer} for {done.ticket} (log indexes "
            f"{', '.join(map(str, done.material.log_indexes))})",
            highlight=False,
            soft_wrap=True,
        )


@release_app.command("uses")
def uses(
    all_: bool = typer.Option(False, "--all", help="refused attempts too"),
    identity: str | None = typer.Option(None, "--identity", help="one identity only"),
    limit: int = typer.Option(1000, "--limit", min=1),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Every use of a release-engineer identity: who, when, what, which ticket, log indexes."""
    with reported(output), open_store(data_dir, database) as db:
        audit = AuditLog(db)
        try:
            events = audit.events(
                action="release",
                identity=identity,
                decision=None if all_ else "allowed",
                limit=limit,
            )
        finally:
            audit.close()
    if output is OutputFormat.json:
        emit_json(events)
        return
    table = Table("at", "engineer", "identity", "ticket", "image", "decision", "log")
    for e in events:
        image = f"{e['repository']}@{e['digest']}" if e["digest"] else e["repository"] or ""
        decision = e["decision"] if e["decision"] == "allowed" else f"refused: {e['code']}"
        table.add_row(
            e["at"],
            e["engineer"] or "",
            e["identity"] or "",
            e["ticket"] or "",
            image,
            decision,
            ",".join(map(str, e["logIndexes"])),
        )
    console.print(table)
