"""``safeguard tlog``: the private transparency log's client commands.

* ``export-trusted-root``: a Sigstore ``trusted_root.json`` naming the log (from a running log's
  URL, or from a data directory / database), so sigstore-python, sigstore-go and cosign trust it;
* ``monitor``: check a log's new checkpoint against the remembered one and re-derive its tree
  (``safeguard.tlog.monitor``); exit 1 on any finding.

The log itself runs inside ``safeguard serve`` (its key: ``--tlog-key``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import typer

from safeguard.cli.app import app
from safeguard.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    console,
    emit_json,
    err_console,
    reported,
)
from safeguard.core.errors import InvalidInput, Unreachable
from safeguard.keys.base import load_public_key, public_key_der
from safeguard.tlog.logkey import key_details
from safeguard.tlog.trustroot import trusted_root, write_json_atomic

tlog_app = typer.Typer(help="The private transparency log: trusted root export, monitoring.")
app.add_typer(tlog_app, name="tlog")


def _signer_name(signed_tree_head: object) -> str | None:
    """The key name on the checkpoint's signature lines (C2SP signed-note: ``— <name> <sig>``)."""
    if not isinstance(signed_tree_head, str):
        return None
    for line in signed_tree_head.splitlines():
        if line.startswith("\u2014 "):
            return line[2:].rsplit(" ", 1)[0]
    return None


def _from_url(url: str) -> tuple[bytes, datetime, str | None]:
    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=30.0) as client:
            pem = client.get(f"{base}/api/v1/log/publicKey")
            pem.raise_for_status()
            info = client.get(f"{base}/api/v1/log").json()
            start = datetime.now(UTC)
            if info.get("treeSize", 0) > 0:
                first = client.get(f"{base}/api/v1/log/entries", params={"logIndex": 0}).json()
                (entry,) = first.values()
                start = datetime.fromtimestamp(int(entry["integratedTime"]), UTC)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise Unreachable(f"cannot read the log at {base}: {exc}") from None
    return (
        public_key_der(load_public_key(pem.content)),
        start,
        _signer_name(info.get("signedTreeHead")),
    )


def _base_for(url: str, log_name: str | None) -> tuple[str, str | None]:
    """The trusted root's ``baseUrl`` for a log reached at ``url``.

    Verifiers (Safeguard's, sigstore-js) require the checkpoint's signer name to equal the
    ``baseUrl`` without its scheme. A log names itself once, when it is created
    (``SAFEGUARD_TLOG_HOSTNAME``, default ``safeguard``), so when that name is not the address
    we reached it at, the name wins and a note says how to name the log after its address.
    """
    parts = urlsplit(url.rstrip("/"))
    if log_name is None or log_name == (parts.netloc + parts.path).rstrip("/"):
        return url.rstrip("/"), None
    note = (
        f"the log signs its checkpoints as {log_name!r}, not {parts.netloc!r}: baseUrl is set to "
        f"https://{log_name} so checkpoints verify (create the log with "
        f"SAFEGUARD_TLOG_HOSTNAME={parts.netloc} to name it after its address)"
    )
    return f"https://{log_name}", note


def _from_store(data_dir: Path, database: str | None) -> tuple[bytes, datetime]:
    from safeguard.store import default_database_url, open_database
    from safeguard.tlog import storage

    db = open_database(database or default_database_url(data_dir))
    try:
        with db.read() as conn:
            state = storage.read_state(conn)
    finally:
        db.dispose()
    if state is None:
        raise InvalidInput(
            "this store holds no transparency log yet", hint="start `safeguard serve` once"
        )
    return state.public_key, state.created_at


@tlog_app.command("export-trusted-root")
def export_trusted_root(
    out: Path = typer.Option(Path("trusted_root.json"), "--out", help="file to write"),
    url: str | None = typer.Option(None, "--url", help="a running log, e.g. http://host:8080"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="the log's data directory"),
    database: str | None = typer.Option(None, "--database", help="the log's database URL"),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="the log's URL in the trusted root (default: --url, or https://<the name the log "
        "signs its checkpoints with> when that differs)",
    ),
    merge: Path | None = typer.Option(
        None, "--merge", help="add the log to this trusted_root.json instead of a fresh one"
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Write a Sigstore trusted_root.json that names this transparency log."""
    with reported(output):
        if (url is None) == (data_dir is None and database is None):
            raise InvalidInput("give either --url or --data-dir/--database")
        note = None
        if url is not None:
            der, start, log_name = _from_url(url)
            if base_url is None:
                base_url, note = _base_for(url, log_name)
        else:
            der, start = _from_store(data_dir or Path("data"), database)
        base = base_url
        if not base:
            raise InvalidInput("--base-url is needed with --data-dir (where clients reach the log)")
        existing = None
        if merge is not None:
            try:
                existing = json.loads(merge.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InvalidInput(f"cannot read {merge}: {exc}") from None
        details = key_details(load_public_key(der))
        doc = trusted_root(base, der, details, start, merge=existing)
        write_json_atomic(out, doc)
        if note is not None:
            err_console.print(f"[yellow]note:[/] {note}", highlight=False)
        if output is OutputFormat.json:
            emit_json({"out": str(out), "tlog": doc["tlogs"][-1]})
        else:
            console.print(
                f"Trusted root written to {out} (log ID {doc['tlogs'][-1]['logId']['keyId']})"
            )


@tlog_app.command("monitor")
def monitor_command(
    url: str = typer.Option(..., "--url", help="the log, e.g. http://host:8080"),
    state: Path = typer.Option(..., "--state", help="remembers the last verified checkpoint"),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="the log's PEM public key (default: pinned on first use)"
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Verify the log's checkpoint, its consistency with the last one, and its entries."""
    from safeguard.tlog.monitor import monitor

    with reported(output):
        pem = None
        if public_key is not None:
            try:
                pem = public_key.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"cannot read {public_key}: {exc.strerror}") from None
        report = monitor(url, state, public_key_pem_bytes=pem)
    if output is OutputFormat.json:
        emit_json(report.to_dict())
    else:
        current = report.current or {}
        if report.trusted_on_first_use:
            console.print("Trusting the log's public key on first use (pass --public-key to pin).")
        for finding in report.findings:
            console.print(
                f"[bold red]FINDING[/] {finding.code.value}: {finding.message}", highlight=False
            )
        if report.ok:
            console.print(
                f"OK: size {current.get('treeSize')} root {current.get('rootHash')} "
                f"({report.entries_checked} entries re-derived)",
                highlight=False,
            )
    if not report.ok:
        raise typer.Exit(1)
