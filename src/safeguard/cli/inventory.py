"""``safeguard inventory``: what was pulled, when, by whom — the gateway's pull log.

* ``inventory last-pull REPO[@DIGEST]``: the latest pull of each digest of REPO (or of one
  digest), with client, identity, user agent and the number of pulls logged.
* ``inventory import-events FILE`` / ``--listen HOST:PORT``: pulls that bypass the gateway, from
  a CNCF distribution registry's notification events (``safeguard.gateway.events``). With
  ``--listen`` this command is the registry's notification endpoint (``notifications.endpoints[]
  .url: http://HOST:PORT/events``) until interrupted.

Both read and write the store directly (``--data-dir``/``--database``, as ``safeguard serve``).
REPO is the repository path inside the registry (``team-a/app``); a leading registry host
(``registry.internal/team-a/app``) is dropped.
"""

from __future__ import annotations

from pathlib import Path

import typer

from safeguard.cli.app import app
from safeguard.cli.output import OUTPUT_OPTION, OutputFormat, console, emit_json, reported
from safeguard.cli.storeopts import DATA_DIR_OPTION, DATABASE_OPTION, open_store
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput
from safeguard.core.reference import validate_repository

inventory = typer.Typer(
    help="The pull log: last pulls, and pulls imported from registry events.",
    no_args_is_help=True,
)
app.add_typer(inventory, name="inventory")


def split_repository(text: str) -> tuple[str, str | None]:
    """``REPO[@DIGEST]`` (with or without a leading registry host) as (repository, digest)."""
    name, sep, digest_text = text.partition("@")
    digest = str(Digest.parse(digest_text)) if sep else None
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        name = rest
    try:
        validate_repository(name)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, hint="write REPO or REPO@sha256:<hex>") from None
    return name, digest


@inventory.command("last-pull")
def last_pull(
    repository: str = typer.Argument(..., help="REPO or REPO@DIGEST"),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """When each digest of REPO (or DIGEST) was last pulled, and by whom."""
    from safeguard.gateway.pulllog import last_pulls

    with reported(output):
        name, digest = split_repository(repository)
        with open_store(data_dir, database) as db:
            found = last_pulls(db, name, digest)
    if output is OutputFormat.json:
        emit_json({"repository": name, "digest": digest, "pulls": [p.as_dict() for p in found]})
        return
    if not found:
        console.print(f"no pulls logged for {repository}", highlight=False)
        return
    for pull in found:
        console.print(
            f"{name}@{pull.digest}  last pulled {pull.at.isoformat(timespec='seconds')} "
            f"by {pull.identity} from {pull.client or '?'} ({pull.user_agent or 'no user agent'}; "
            f"{pull.source}, {pull.pulls} pull{'s' if pull.pulls != 1 else ''} logged)",
            highlight=False,
            soft_wrap=True,
        )


@inventory.command("import-events")
def import_events(
    file: Path | None = typer.Argument(None, help="a saved notification envelope (JSON)"),
    listen: str | None = typer.Option(
        None, "--listen", help="HOST:PORT to receive a registry's notifications on (port 0: any)"
    ),
    exclude_client: list[str] | None = typer.Option(
        None, "--exclude-client", help="client address whose pulls to ignore (the gateway's)"
    ),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Record manifest pulls from CNCF distribution notification events."""
    from safeguard.gateway.events import parse_envelope
    from safeguard.gateway.pulllog import write_pulls

    excluded = frozenset(exclude_client or [])
    with reported(output):
        if (file is None) == (listen is None):
            raise InvalidInput("give either FILE or --listen HOST:PORT")
        if listen is not None:
            _listen(listen, data_dir, database, excluded)
            return
        assert file is not None
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {file}: {exc.strerror}") from None
        imported = parse_envelope(raw, exclude_clients=excluded)
        with open_store(data_dir, database) as db:
            write_pulls(db, imported.pulls)
    summary = {
        "imported": len(imported.pulls),
        "skipped": imported.skipped,
        "excluded": imported.excluded,
    }
    if output is OutputFormat.json:
        emit_json(summary)
    else:
        console.print(
            f"imported {summary['imported']} pulls ({summary['skipped']} other events skipped, "
            f"{summary['excluded']} excluded)",
            highlight=False,
        )


def _listen(address: str, data_dir: Path, database: str | None, excluded: frozenset[str]) -> None:
    import anyio.to_thread
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from safeguard.cli.serve import _bind
    from safeguard.core.errors import SafeguardError
    from safeguard.gateway.events import parse_envelope
    from safeguard.gateway.pulllog import write_pulls

    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise InvalidInput(f"--listen {address!r} is not HOST:PORT")

    async def receive(request: Request) -> Response:
        raw = await request.body()
        try:
            imported = parse_envelope(raw, exclude_clients=excluded)
        except SafeguardError as exc:
            return JSONResponse(exc.to_dict(), status_code=400)
        await anyio.to_thread.run_sync(write_pulls, db, imported.pulls)
        return JSONResponse({"imported": len(imported.pulls), "skipped": imported.skipped})

    site = Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])
    sock = _bind(host, int(port_text))
    typer.echo(f"Safeguard events listener on http://{host}:{sock.getsockname()[1]}/events")
    config = uvicorn.Config(site, log_level="warning", lifespan="off", server_header=False)
    with open_store(data_dir, database) as db:
        uvicorn.Server(config).run(sockets=[sock])
